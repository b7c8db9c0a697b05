"""`loyaloop demo` runs the shipped journeys embedded (no Redis server) and prints the table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli


@pytest.mark.slow
def test_the_demo_runs_every_shipped_journey_embedded_and_prints_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no REDIS_URL, a small demo fills the outbox and prints one section per journey."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_SECRET_KEY", raising=False)
    outbox = tmp_path / "outbox.jsonl"
    result = CliRunner().invoke(cli, ["demo", "--customers", "40", "--days", "45", "--outbox", str(outbox)])
    assert result.exit_code == 0, result.output
    for journey_id in ("welcome", "winback", "birthday", "replenishment"):
        assert journey_id in result.output
    assert outbox.exists() and outbox.read_text(encoding="utf-8").count("\n") > 20
    assert str(outbox) in result.output.replace("\n", "")
