"""The real SendGrid and Twilio SDKs, as the channels drive them, against the providers' own OpenAPI contracts.

Stoplight Prism serves ``../shared/specs`` with ``--errors``: a request that breaks the contract is
answered 4xx and logged as a violation.  Valid messages must pass with zero violations, and a
deliberately broken one must be refused, proving the validation is live.
"""

from __future__ import annotations

import pytest

from channels.email import SendGridConfig, SendGridEmail
from channels.sms import TwilioConfig, TwilioSms
from orchestrator.errors import PermanentError
from orchestrator.message import Message
from tests.channels import factories
from tests.channels.conftest import Prism

pytestmark = pytest.mark.prism

SID = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "fedcba9876543210" * 2


def sendgrid(prism: Prism, **changes: object) -> SendGridEmail:
    values: dict[str, object] = {
        "api_key": "SG.contract-test",
        "from_email": "news@brand.example",
        "from_name": "Brand",
        "reply_to": "care@brand.example",
        "host": prism.url,
        "asm_group_id": 42,
    }
    values.update(changes)
    return SendGridEmail(SendGridConfig(**values))  # type: ignore[arg-type]


def twilio(prism: Prism, **changes: object) -> TwilioSms:
    values: dict[str, object] = {
        "account_sid": SID,
        "auth_token": "contract-test",
        "from_number": "+3197010254321",
        "base_url": prism.url,
        "status_callback": "https://brand.example/twilio/status",
    }
    values.update(changes)
    return TwilioSms(TwilioConfig(**values))  # type: ignore[arg-type]


def send_email(prism: Prism, message: Message, **changes: object) -> None:
    receipt = sendgrid(prism, **changes).send(message)
    assert receipt.details["status"] == 202


@pytest.mark.parametrize("sandbox", [False, True])
@pytest.mark.parametrize("category", ["marketing", "transactional"])
def test_sendgrid_accepts_every_shape_we_send(sendgrid_prism: Prism, category: str, sandbox: bool) -> None:
    """Marketing (ASM group, List-Unsubscribe headers) and transactional mail, sandboxed or not, pass the contract."""
    mark = sendgrid_prism.mark()
    message = factories.email(
        category=category,
        headers={
            "List-Unsubscribe": "<https://brand.example/u/tok>, <mailto:unsub@brand.example>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        metadata={"utm_campaign": "welcome"},
        categories=("onboarding",),
    )
    send_email(sendgrid_prism, message, sandbox=sandbox)
    assert sendgrid_prism.violations(mark) == []


def test_sendgrid_text_only_mail_passes(sendgrid_prism: Prism) -> None:
    """A mail without HTML (text part only) is valid too."""
    mark = sendgrid_prism.mark()
    send_email(sendgrid_prism, factories.email(html=None))
    assert sendgrid_prism.violations(mark) == []


def test_sendgrid_contract_refuses_a_bad_address(sendgrid_prism: Prism) -> None:
    """A malformed recipient is passed through untouched, refused by the contract, and maps to PermanentError."""
    mark = sendgrid_prism.mark()
    with pytest.raises(PermanentError, match="HTTP 400"):
        sendgrid(sendgrid_prism).send(factories.email(to="not-an-address"))
    assert any("personalizations.0.to.0.email" in line for line in sendgrid_prism.violations(mark))


@pytest.mark.parametrize("sender", ["from_number", "messaging_service_sid"])
def test_twilio_accepts_our_messages(twilio_prism: Prism, sender: str) -> None:
    """A sender number or a Messaging Service, a status callback, GSM-7 and UCS-2 bodies all pass the contract."""
    mark = twilio_prism.mark()
    changes: dict[str, object] = (
        {"from_number": None, "messaging_service_sid": SERVICE} if sender != "from_number" else {}
    )
    channel = twilio(twilio_prism, **changes)
    for body in ("Your points: 1,250 €", "Tot snel! 🎉 " * 10):
        receipt = channel.send(factories.sms(body=body))
        assert receipt.provider == "twilio" and receipt.provider_message_id.startswith("SM")
    assert twilio_prism.violations(mark) == []


def test_twilio_contract_refuses_an_invalid_field(twilio_prism: Prism) -> None:
    """A status callback that is not a URI breaks the contract: Prism refuses it, and it is not retried."""
    mark = twilio_prism.mark()
    with pytest.raises(PermanentError):
        twilio(twilio_prism, status_callback="not a url").send(factories.sms())
    assert any("StatusCallback" in line for line in twilio_prism.violations(mark))
