"""Test sends: a journey's real messages, through the configured channels, to the team's seed list.

Before a launch the team wants the messages in their own inboxes, rendered by the real templates
and carried by the real providers.  A test send is therefore a real send with four differences:
it goes only to an address on the seed list (checked again after the plugins' ``prepare_message``
hooks, which could change ``to``); its subject (or SMS/push text) starts with ``[TEST]`` and its
metadata says ``test``; it never touches Redis (no claim, no gate, no caps, no stats, no send
log), so it neither counts toward a customer's caps nor shows up in reports; and its idempotency
key is fresh each time, so sending again really sends again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pluggy

from orchestrator import plugins
from orchestrator.errors import LoyaloopError, PermanentError, TemplateError, TransientError
from orchestrator.language.journey import Journey, SendStep
from orchestrator.language.profile import Profile
from orchestrator.language.render import Renderer, build_context
from orchestrator.language.seedlist import Seed, SeedList
from orchestrator.message import Channel, Message

MARK = "[TEST] "


@dataclass(frozen=True)
class TestSendResult:
    """What one test send came to; ``detail`` never holds an address."""

    seed: str
    step_id: str
    channel: str | None
    outcome: str
    detail: str = ""


def seed_profile(seed: Seed) -> Profile:
    return Profile(
        id=f"seed-{seed.name}",
        email=seed.email,
        phone=seed.phone,
        push_tokens=[seed.push_token] if seed.push_token else [],
        locale=seed.locale,
        attributes=dict(seed.attributes),
    )


def send_tests(
    journey: Journey,
    steps: list[SendStep],
    seeds: SeedList,
    *,
    channels: dict[str, Channel],
    renderer: Renderer,
    pm: pluggy.PluginManager,
    now: datetime,
    event: dict[str, Any],
    default_locale: str,
    voucher: dict[str, str] | None = None,
    channel: str | None = None,
    saved: dict[str, Any] | None = None,
) -> list[TestSendResult]:
    """Every step's message to every seed, on ``channel`` or the first of the step's channels
    the seed has an address for.  ``saved`` stands for what the journey's ``action`` steps keep
    (``step.<save_as>``): a test send calls no endpoint."""
    allowed = seeds.addresses()
    results: list[TestSendResult] = []
    for seed in seeds.seeds:
        profile = seed_profile(seed)
        for step in steps:
            results.append(
                _one(
                    journey,
                    step,
                    seed,
                    profile,
                    allowed,
                    channels,
                    renderer,
                    pm,
                    now,
                    event,
                    default_locale,
                    voucher,
                    channel,
                    saved,
                )
            )
    return results


def _one(
    journey: Journey,
    step: SendStep,
    seed: Seed,
    profile: Profile,
    allowed: frozenset[str],
    channels: dict[str, Channel],
    renderer: Renderer,
    pm: pluggy.PluginManager,
    now: datetime,
    event: dict[str, Any],
    default_locale: str,
    voucher: dict[str, str] | None,
    only: str | None,
    saved: dict[str, Any] | None,
) -> TestSendResult:
    names = [only] if only is not None else list(step.channels)
    chosen = next((channels[n] for n in names if n in channels and profile.address(channels[n].address_field)), None)
    if chosen is None:
        return TestSendResult(
            seed.name, step.id, None, "no_address", f"no address on the seed list for {', '.join(names)}"
        )
    address = profile.address(chosen.address_field)
    assert address is not None
    ctx = build_context(
        profile.context(),
        event=event,
        trigger=event,
        journey_id=journey.id,
        journey_name=journey.name,
        step_id=step.id,
        now=now,
        voucher=voucher if step.voucher else None,
        saved=saved,
    )
    try:
        content = renderer.render(chosen.name, step.template, profile.locale or default_locale, ctx)
    except TemplateError as exc:
        return TestSendResult(seed.name, step.id, chosen.name, "template_error", str(exc))
    key = f"test:{uuid.uuid4().hex}"
    message = Message(
        idempotency_key=key,
        channel=chosen.name,
        customer_id=profile.id,
        journey_id=journey.id,
        step_id=step.id,
        run_id=key,
        category=journey.category,
        locale=content.locale,
        to=address,
        body=MARK + content.body if content.subject is None and content.title is None else content.body,
        subject=_marked(content.subject) if content.subject is not None else None,
        html=content.html,
        title=_marked(content.title) if content.title is not None else None,
        data=dict(content.data),
        metadata={"test": "1", "idempotency_key": key, "step_id": step.id},
        categories=(journey.id, step.id, "test"),
    )
    prepared = plugins.prepare_message(pm, message, profile.context(), journey.id)
    if prepared.to not in allowed:
        return TestSendResult(
            seed.name, step.id, chosen.name, "refused", "a plugin changed the address to one not on the seed list"
        )
    try:
        receipt = chosen.send(replace(prepared, idempotency_key=key))
    except (PermanentError, TransientError) as exc:
        return TestSendResult(seed.name, step.id, chosen.name, "failed", f"{type(exc).__name__}: {exc}")
    except LoyaloopError as exc:
        return TestSendResult(seed.name, step.id, chosen.name, "failed", str(exc))
    return TestSendResult(seed.name, step.id, chosen.name, "sent", receipt.provider_message_id)


def _marked(text: str | None) -> str | None:
    return None if text is None else MARK + text
