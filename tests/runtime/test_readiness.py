"""The start-up check (orchestrator/runtime/readiness.py): every setting the loaded journeys and
channels need, reported as one line per problem with its fix, before a process takes work."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.runtime.readiness import check_startup
from orchestrator.settings import load_settings
from tests.runtime.harness import write_templates

MARKETING = """\
id: news
name: News
trigger: {event: signup}
steps:
  - {id: hello, send: email, template: hello}
"""
TRANSACTIONAL = """\
id: receipt
name: Receipt
trigger: {event: order.placed}
category: transactional
steps:
  - {id: receipt, send: sms, template: hello, fallback: [email]}
"""
PROVIDER_VARIABLES = (
    "SENDGRID_API_KEY",
    "TWILIO_ACCOUNT_SID",
    "FCM_SERVICE_ACCOUNT_JSON",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
BROKEN = """\
id: broken
name: Broken
trigger: {event: signup}
steps:
  - {id: pause, wait: 3 dayz}
  - {id: hello, send: email, template: helo}
"""


def _folder(tmp_path: Path, **journeys: str) -> dict[str, str]:
    (tmp_path / "journeys").mkdir()
    for name, text in journeys.items():
        (tmp_path / "journeys" / f"{name}.yaml").write_text(text, encoding="utf-8")
    write_templates(tmp_path / "templates", ["hello"])
    return {
        "LOYALOOP_JOURNEYS": str(tmp_path / "journeys"),
        "LOYALOOP_TEMPLATES": str(tmp_path / "templates"),
        "LOYALOOP_OUTBOX": str(tmp_path / "outbox.jsonl"),
    }


def test_a_complete_configuration_has_no_problem(tmp_path: Path) -> None:
    """Redis, secret and a reachable public URL set: ready, and the journeys are named id@version."""
    env = _folder(tmp_path, news=MARKETING)
    env.update(
        REDIS_URL="redis://redis.internal:6379/0",
        LOYALOOP_SECRET_KEY="k" * 40,
        LOYALOOP_PUBLIC_URL="https://loyaloop.brand.example",
    )
    found = check_startup(load_settings(env=env))
    assert found.problems == []
    assert found.loaded().startswith("news@") and len(found.loaded()) == len("news@") + 12


def test_every_missing_setting_is_one_line_naming_its_fix(tmp_path: Path) -> None:
    """No REDIS_URL and no secret with a marketing journey that sends: two lines, each with the fix."""
    env = _folder(tmp_path, news=MARKETING)
    problems = check_startup(load_settings(env=env)).problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("REDIS_URL is not set") and "export REDIS_URL=" in problems[0]
    assert problems[1].startswith("LOYALOOP_SECRET_KEY is not set") and "export LOYALOOP_SECRET_KEY=" in problems[1]
    assert "news" in problems[1]


def test_no_secret_is_needed_when_no_marketing_journey_sends(tmp_path: Path) -> None:
    env = _folder(tmp_path, receipt=TRANSACTIONAL)
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    assert check_startup(load_settings(env=env)).problems == []


def test_a_loopback_public_url_is_refused_for_a_remote_redis_and_warned_on_loopback(tmp_path: Path) -> None:
    env = _folder(tmp_path, news=MARKETING)
    env.update(REDIS_URL="redis://redis.internal:6379/0", LOYALOOP_SECRET_KEY="k" * 40)
    problems = check_startup(load_settings(env=env)).problems
    assert len(problems) == 1 and problems[0].startswith("LOYALOOP_PUBLIC_URL is 'http://127.0.0.1:8000'")
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    found = check_startup(load_settings(env=env))
    assert found.problems == [] and any("LOYALOOP_PUBLIC_URL" in w for w in found.warnings)


def test_each_half_configured_channel_is_its_own_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SendGrid without a sender and Twilio without a sender: both reported, not only the first."""
    env = _folder(tmp_path, receipt=TRANSACTIONAL)
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")
    monkeypatch.delenv("LOYALOOP_EMAIL_FROM", raising=False)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.delenv("TWILIO_FROM_NUMBER", raising=False)
    monkeypatch.delenv("TWILIO_MESSAGING_SERVICE_SID", raising=False)
    monkeypatch.setenv("FCM_SERVICE_ACCOUNT_JSON", "{not json")
    problems = check_startup(load_settings(env=env)).problems
    assert any("'email'" in p and "LOYALOOP_EMAIL_FROM" in p for p in problems), problems
    assert any("'sms'" in p and "TWILIO_MESSAGING_SERVICE_SID" in p for p in problems), problems
    assert any("'push'" in p and "FCM_SERVICE_ACCOUNT_JSON is not JSON" in p for p in problems), problems
    # The scheduler does not send: the same problems are warnings there.
    found = check_startup(load_settings(env=env), need_channels=False)
    assert found.problems == [] and len(found.warnings) >= 3


def test_a_broken_folder_is_a_located_problem(tmp_path: Path) -> None:
    """A broken journey is a problem line with its file:line (the whole list is the loader's)."""
    env = _folder(tmp_path, broken=BROKEN)
    env.update(REDIS_URL="redis://127.0.0.1:6379/0", LOYALOOP_SECRET_KEY="k" * 40)
    problems = check_startup(load_settings(env=env)).problems
    assert any("broken.yaml:5:" in p and "dayz" in p for p in problems), problems


def test_channels_without_credentials_on_redis_are_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = _folder(tmp_path, receipt=TRANSACTIONAL)
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    warnings = check_startup(load_settings(env=env)).warnings
    assert [w.split("'")[1] for w in warnings] == ["email", "sms"]


CREDIT = """\
id: credit
name: Points for a review
trigger: {event: review.posted}
category: transactional
steps:
  - id: give_points
    action: ledger
    body: {customer: "{{ profile.id }}", points: "{{ 50 }}"}
  - {id: thanks, send: email, template: hello}
"""
LEDGER = "endpoints:\n  ledger: {kind: webhook, url_env: SHOP_LEDGER_URL, secret_env: SHOP_LEDGER_SECRET}\n"
ROOT = Path(__file__).resolve().parents[2]


def _with_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = _folder(tmp_path, credit=CREDIT)
    (tmp_path / "journeys" / "settings.yaml").write_text(LEDGER, encoding="utf-8")
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    monkeypatch.delenv("SHOP_LEDGER_URL", raising=False)  # the endpoint kind reads the process' environment
    monkeypatch.setenv("SHOP_LEDGER_SECRET", "x" * 40)
    return env


def test_an_endpoint_without_its_url_is_one_line_naming_journey_step_endpoint_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that would call an unconfigured endpoint refuses to start (never a failed call later):
    one line says which journey and step call which endpoint, and the variable to set."""
    env = _with_ledger(tmp_path, monkeypatch)
    problems = check_startup(load_settings(env=env)).problems
    assert len(problems) == 1, problems
    line = problems[0]
    assert "\n" not in line
    assert line.startswith("journey 'credit' step 'give_points' calls endpoint 'ledger'")
    assert "SHOP_LEDGER_URL is not set; export SHOP_LEDGER_URL=https://" in line
    # Where no step runs (serve), the same line is a warning.
    found = check_startup(load_settings(env=env), need_endpoints=False)
    assert found.problems == [] and line in found.warnings
    # Set, the check passes; a short secret is the next line.
    monkeypatch.setenv("SHOP_LEDGER_URL", "https://shop.example/ledger")
    assert check_startup(load_settings(env=env)).problems == []
    monkeypatch.setenv("SHOP_LEDGER_SECRET", "short")
    (problem,) = check_startup(load_settings(env=env)).problems
    assert "endpoint 'ledger'" in problem and "SHOP_LEDGER_SECRET must be set to a secret of at least 32" in problem


def test_the_shipped_journeys_need_the_ledger_url_once_for_all_their_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped referral journeys credit both sides through ``ledger``: without
    LOYALTY_LEDGER_URL a worker refuses with one line naming every step that calls it."""
    monkeypatch.delenv("LOYALTY_LEDGER_URL", raising=False)
    monkeypatch.setenv("LOYALTY_LEDGER_SECRET", "y" * 40)
    env = {
        "LOYALOOP_JOURNEYS": str(ROOT / "journeys"),
        "LOYALOOP_TEMPLATES": str(ROOT / "templates"),
        "LOYALOOP_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "LOYALOOP_SECRET_KEY": "k" * 40,
    }
    problems = [p for p in check_startup(load_settings(env=env)).problems if "endpoint" in p]
    assert problems == [
        "journey 'referral_reward' step 'credit_referrer' (also referral_reward/credit_friend) calls endpoint "
        "'ledger', which cannot be called: LOYALTY_LEDGER_URL is not set; export LOYALTY_LEDGER_URL=https://… "
        "(the endpoint's URL)"
    ]
    monkeypatch.setenv("LOYALTY_LEDGER_URL", "http://127.0.0.1:9/ledger")  # loopback: plain http allowed
    assert not [p for p in check_startup(load_settings(env=env)).problems if "endpoint" in p]
