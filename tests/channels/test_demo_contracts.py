"""`loyaloop demo` with provider credentials and base URLs: real SDK traffic to Prism, zero contract violations.

Without credentials the same demo writes every message to the outbox; with them, e-mail and SMS
go through SendGrid and Twilio (here: Prism serving their contracts) and only push, which has no
credentials in this test, stays in the outbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.channels.conftest import Prism

pytestmark = [pytest.mark.prism, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CREDENTIALS = (
    "SENDGRID_API_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "FCM_SERVICE_ACCOUNT_JSON",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "REDIS_URL",
)


def test_demo_sends_through_the_providers_without_violations(
    sendgrid_prism: Prism, twilio_prism: Prism, tmp_path: Path
) -> None:
    """E-mail and SMS of the demo reach the providers' contracts and every request is valid."""
    marks = {"sendgrid": sendgrid_prism.mark(), "twilio": twilio_prism.mark()}
    env = {key: value for key, value in os.environ.items() if key not in CREDENTIALS}
    env.update(
        SENDGRID_API_KEY="SG.demo",
        SENDGRID_API_HOST=sendgrid_prism.url,
        LOYALOOP_EMAIL_FROM="Loyaloop Coffee <news@brand.example>",
        SENDGRID_ASM_GROUP_ID="42",
        TWILIO_ACCOUNT_SID="AC" + "0123456789abcdef" * 2,
        TWILIO_AUTH_TOKEN="demo",
        TWILIO_MESSAGING_SERVICE_SID="MG" + "fedcba9876543210" * 2,
        TWILIO_STATUS_CALLBACK_URL="https://brand.example/webhooks/twilio/status",
        TWILIO_API_BASE_URL=twilio_prism.url,
    )
    outbox = tmp_path / "outbox.jsonl"
    loyaloop = Path(sys.executable).with_name("loyaloop")
    result = subprocess.run(
        [str(loyaloop), "demo", "--customers", "40", "--days", "30", "--outbox", str(outbox)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    sendgrid_log = sendgrid_prism.log_path.read_bytes()[marks["sendgrid"] :].decode()
    twilio_log = twilio_prism.log_path.read_bytes()[marks["twilio"] :].decode()
    assert sendgrid_log.count("Request received") > 10
    assert twilio_log.count("Request received") > 0
    assert sendgrid_prism.violations(marks["sendgrid"]) == []
    assert twilio_prism.violations(marks["twilio"]) == []
    channels = {json.loads(line)["channel"] for line in outbox.read_text().splitlines()} if outbox.exists() else set()
    assert channels <= {"push"}
