"""Every template of the shipped journeys, rendered in every locale and sent to the providers' contracts.

For each send step (and each fallback) in ``journeys/``, the template is rendered for an example
customer (the catalogue's example attributes and the trigger event's example properties) in
English and Dutch, built into a message exactly as the runtime builds it, and sent: e-mail and SMS
through the real SendGrid / Twilio SDK to Prism (accepted, zero violations), push through the FCM
channel to the loopback fake of FCM v1 (request shape checked, 4 KB limit respected).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from channels.email import SendGridConfig, SendGridEmail
from channels.push import FcmConfig, FcmPush
from channels.sms import TwilioConfig, TwilioSms
from orchestrator.gate import unsubscribe
from orchestrator.language.catalogue import CATALOGUE_FILE, load_catalogue
from orchestrator.language.journey import EventTrigger, Journey
from orchestrator.language.loader import load_journeys
from orchestrator.language.preview import sample_saved
from orchestrator.language.profile import Profile
from orchestrator.language.render import Renderer, build_context
from orchestrator.message import Channel, Message
from orchestrator.settings import load_settings
from tests.channels.conftest import Prism
from tests.channels.fake_google import PROJECT, FakeGoogle

pytestmark = pytest.mark.prism

REPO = Path(__file__).resolve().parents[2]
JOURNEYS = REPO / "journeys"
TEMPLATES = REPO / "templates"
LOCALES = ("en", "nl")
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SECRET = b"contract-test-secret-32-bytes-long!!"


@dataclass(frozen=True)
class Case:
    journey: Journey
    step_id: str
    channel: str
    template: str

    def __str__(self) -> str:
        return f"{self.journey.id}/{self.step_id}/{self.channel}"


def cases() -> list[Case]:
    settings = load_settings(JOURNEYS, env={})
    journeys = load_journeys(JOURNEYS, TEMPLATES, default_locale=settings.default_locale)
    found: list[Case] = []
    for journey in journeys.values():
        for step in journey.steps:
            template = getattr(step, "template", None)
            if template is None:
                continue
            for channel in step.channels:
                if channel in ("email", "sms", "push"):
                    found.append(Case(journey, step.id, channel, template))
    return found


def profile(locale: str) -> Profile:
    catalogue = load_catalogue(JOURNEYS / CATALOGUE_FILE)
    return Profile(
        id="cust-contract",
        email="anna.devries@example.com",
        phone="+31612345678",
        locale=locale,
        timezone="Europe/Amsterdam",
        consent={"email": True, "sms": True, "push": True},
        attributes=catalogue.example_attributes(),
        orders_count=3,
        total_spent=128.5,
        last_order_at=datetime(2026, 10, 1, tzinfo=UTC),
    )


def message(case: Case, locale: str, renderer: Renderer) -> Message:
    """The message the runtime would hand the channel (see orchestrator.runtime.delivery)."""
    catalogue = load_catalogue(JOURNEYS / CATALOGUE_FILE)
    trigger = case.journey.trigger
    event: dict[str, Any] = catalogue.example_event(trigger.event) if isinstance(trigger, EventTrigger) else {}
    customer = profile(locale)
    headers: dict[str, str] = {}
    link = ""
    if case.journey.category == "marketing":
        token = unsubscribe.make_token(SECRET, customer.id, case.channel, case.journey.id, issued_at=NOW)
        link = unsubscribe.unsubscribe_url("https://brand.example", token)
        if case.channel == "email":
            headers = unsubscribe.unsubscribe_headers("https://brand.example", token)
    context = build_context(
        customer.context(),
        trigger=event,
        journey_id=case.journey.id,
        journey_name=case.journey.name,
        step_id=case.step_id,
        now=NOW,
        unsubscribe_url=link,
        voucher={"code": "DEMO-BIRTHDAY-00001"} if getattr(case.journey.step(case.step_id), "voucher", None) else None,
        saved=sample_saved(case.journey, load_settings(JOURNEYS, env={}).endpoints),
    )
    content = renderer.render(case.channel, case.template, locale, context)
    run = "run-contract"
    key = f"{run}:{case.step_id}:{case.channel}"
    return Message(
        idempotency_key=key,
        channel=case.channel,
        customer_id=customer.id,
        journey_id=case.journey.id,
        step_id=case.step_id,
        run_id=run,
        category=case.journey.category,
        locale=content.locale,
        to={"email": str(customer.email), "sms": str(customer.phone), "push": "device-token-contract"}[case.channel],
        body=content.body,
        subject=content.subject,
        html=content.html,
        title=content.title,
        data=dict(content.data),
        headers=headers,
        metadata={"run_id": run, "step_id": case.step_id, "idempotency_key": key},
        categories=(case.journey.id, case.step_id),
    )


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    settings = load_settings(JOURNEYS, env={})
    yield Renderer(TEMPLATES, default_locale=settings.default_locale)


CASES = cases()


def test_the_shipped_journeys_use_every_built_in_provider() -> None:
    """There is something to check: the shipped journeys send e-mail, SMS and push."""
    assert {case.channel for case in CASES} == {"email", "sms", "push"}


def provider_channel(case: Case, request: pytest.FixtureRequest) -> tuple[Channel, Prism | None]:
    """The real provider channel for the case, pointed at Prism (or at the FCM fake for push)."""
    if case.channel == "email":
        prism: Prism = request.getfixturevalue("sendgrid_prism")
        config = SendGridConfig(
            api_key="SG.contract",
            from_email="news@brand.example",
            from_name="Loyaloop Coffee",
            host=prism.url,
            asm_group_id=42,
        )
        return SendGridEmail(config), prism
    if case.channel == "sms":
        prism = request.getfixturevalue("twilio_prism")
        return TwilioSms(
            TwilioConfig(
                account_sid="AC" + "0123456789abcdef" * 2,
                auth_token="contract",
                messaging_service_sid="MG" + "fedcba9876543210" * 2,
                status_callback="https://brand.example/webhooks/twilio/status",
                base_url=prism.url,
            )
        ), prism
    google: FakeGoogle = request.getfixturevalue("google")
    config = FcmConfig(project_id=PROJECT, service_account=google.service_account(), base_url=google.server.url)
    return FcmPush(config), None


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_template_passes_the_provider_contract(
    case: Case, locale: str, renderer: Renderer, request: pytest.FixtureRequest
) -> None:
    """Rendered in this locale and sent through the real client, the message is accepted with no violation."""
    built = message(case, locale, renderer)
    assert built.locale == locale, f"{case.template} has no complete {locale} version"
    channel, prism = provider_channel(case, request)
    mark = prism.mark() if prism else 0
    receipt = channel.send(built)
    assert receipt.provider in ("sendgrid", "twilio", "fcm")
    if prism is not None:
        assert prism.violations(mark) == []
