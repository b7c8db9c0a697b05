"""`loyaloop send-test` through the real SendGrid SDK against Prism serving SendGrid's contract:
the seed's message is accepted by the provider's own schema, marked [TEST], and no Redis is used."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.channels.conftest import Prism

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.yaml"
    path.write_text(
        "seeds:\n  - {name: ana, email: ana@shop.example, locale: nl}\n  - {name: ben, phone: '+31612345678'}\n",
        encoding="utf-8",
    )
    return path


def test_a_seed_gets_the_real_message_from_sendgrid_and_nothing_needs_redis(
    sendgrid_prism: Prism, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.send-test")
    monkeypatch.setenv("SENDGRID_API_HOST", sendgrid_prism.url)
    monkeypatch.setenv("LOYALOOP_EMAIL_FROM", "news@brand.example")
    monkeypatch.setenv("LOYALOOP_OUTBOX", str(tmp_path / "outbox.jsonl"))
    mark = sendgrid_prism.mark()
    args = ["send-test", "welcome", "welcome_email", "--to", str(seeds), "--journeys", str(ROOT / "journeys")]
    result = CliRunner().invoke(cli, [*args, "--templates", str(ROOT / "templates")], catch_exceptions=False)
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["ana", "welcome_email", "email", "sent"], result.output
    assert lines[1].split()[:3] == ["ben", "welcome_email", "-"] and "no_address" in lines[1]
    assert result.exit_code == 1  # one seed could not get it: said, and the exit status says so too
    assert sendgrid_prism.violations(mark) == []
    assert "ana@shop.example" not in result.output


def test_a_seed_list_with_a_bad_address_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.cli import main

    monkeypatch.setenv("LOYALOOP_OUTBOX", str(tmp_path / "outbox.jsonl"))
    bad = tmp_path / "seeds.yaml"
    bad.write_text("seeds:\n  - {name: ana, email: ana-at-shop}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["send-test", "welcome", "--to", str(bad), "--journeys", str(ROOT / "journeys")])
    assert exited.value.code == 1 and not (tmp_path / "outbox.jsonl").exists()
    assert f"{bad}:2:24: email is not a valid e-mail address" in capsys.readouterr().err
