"""A send that fails counts as failed everywhere: the step and gate tables, ``/metrics``, the run's
end state and the worker's log line (journey, step, template, field — no personal data).

The case reproduced is a ``delivery.late`` event without the ``voucher_code`` its apology
template uses: the push and its e-mail fallback both fail to render."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator import metrics
from orchestrator.cli.demo_run import step_rows
from orchestrator.cli.status_table import decision_rows
from orchestrator.engine.run_ids import run_id_for
from tests.runtime.harness import Harness, journey, running

LATE = journey(
    {
        "id": "late_delivery",
        "name": "Late delivery apology",
        "trigger": {"event": "delivery.late"},
        "steps": [
            {"id": "apology", "send": "push", "template": "apology", "fallback": ["email"]},
            {"id": "done", "exit": True},
        ],
    }
)


def _voucher_templates(h: Harness) -> None:
    """The apology on both channels quotes the event's voucher code (no default)."""
    folder = h.settings.templates_dir
    for part in ("title", "body"):
        (folder / "push" / f"apology.{part}.j2").write_text("Sorry: code {{ event.voucher_code }}", encoding="utf-8")
    for part in ("subject", "html", "txt"):
        (folder / "email" / f"apology.{part}.j2").write_text("Sorry: code {{ event.voucher_code }}", encoding="utf-8")


def _customer(h: Harness) -> None:
    h.api.identify(
        "c1",
        {
            "email": "anna@example.com",
            "push_token": "tok-anna-123",
            "first_name": "Anna",
            "consent": {"email": True, "push": True},
        },
    )


def _failed_metric(channel: str) -> float:
    value: float = metrics.get("sends").labels("late_delivery", channel, "failed")._value.get()
    return value


def test_a_template_error_on_every_channel_counts_as_failed_and_ends_the_run_failed(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running(redis_url, tmp_path, [LATE], templates=["apology"]) as h:
        _voucher_templates(h)
        _customer(h)
        before = {channel: _failed_metric(channel) for channel in ("push", "email")}
        with caplog.at_level(logging.WARNING, logger="orchestrator.runtime.delivery"):
            event_id = h.api.track("c1", "delivery.late", {"order_id": "o-1"})
            h.settle()
        assert h.outbox() == []
        stats = h.stats("late_delivery")
        # The step's outcome and the run's end state.
        assert stats["apology:template_error:push"] == 1 and stats["apology:template_error:email"] == 1
        assert stats["apology:failed"] == 1 and "apology:undeliverable" not in stats
        assert stats["_journey:failed"] == 1 and "_journey:completed" not in stats
        stored = h.runtime.store.get_enrollment("c1", run_id_for("late_delivery", "c1", event_id))
        assert stored is not None
        assert stored.enrollment.status == "failed" and stored.enrollment.exit_reason == "send_failed"
        # The gate table (loyaloop status) and the demo's step table both show the failures.
        assert dict(decision_rows(stats))["apology"]["failed"] == 2
        (row,) = step_rows(LATE, stats)
        assert row[0] == "apology" and row[7] == "2"  # sent, capd, defr, supp, cons, addr, fail
        # The measurement record (loyaloop report) counts the step's outcome as failed, not suppressed.
        (version,) = [v for v in h.runtime.store.version_figures() if v.journey_id == "late_delivery"]
        totals = version.step_totals()["apology"]
        assert totals["failed"] == 1 and "suppressed" not in totals and "sent" not in totals
        # /metrics counts them as failed sends on each channel.
        assert _failed_metric("push") - before["push"] == 1
        assert _failed_metric("email") - before["email"] == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("template failed")]
    assert len(lines) == 2
    assert "journey late_delivery, step apology, template push/apology" in lines[0]
    assert "event.voucher_code is missing" in lines[0] and "(template push/apology." in lines[0]
    assert all("anna" not in line and "tok-anna" not in line for line in lines)


def test_the_same_event_with_its_voucher_code_completes(redis_url: str, tmp_path: Path) -> None:
    """The control: with the field present the push goes out and the designed exit completes."""
    with running(redis_url, tmp_path, [LATE], templates=["apology"]) as h:
        _voucher_templates(h)
        _customer(h)
        h.api.track("c1", "delivery.late", {"order_id": "o-1", "voucher_code": "SORRY10"})
        h.settle()
        assert [m["channel"] for m in h.outbox()] == ["push"]
        stats = h.stats("late_delivery")
        assert stats["_journey:completed"] == 1 and "_journey:failed" not in stats
        assert dict(decision_rows(stats))["apology"]["failed"] == 0
