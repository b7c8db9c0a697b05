"""A send's outcome on a channel is one typed value, written and read in one place, in the very
``<outcome>:<channel>`` text the journey stats in Redis already hold."""

from __future__ import annotations

import sys
from typing import get_args

import pytest
from mypy import api as mypy_api

from orchestrator.engine.enrollment import ChannelOutcome, ChannelOutcomeName, is_delivery_outcome


@pytest.mark.parametrize("name", get_args(ChannelOutcomeName))
def test_every_channel_outcome_reads_back_what_it_writes(name: ChannelOutcomeName) -> None:
    """``str()`` gives ``<outcome>:<channel>`` and :meth:`ChannelOutcome.parse` turns it back."""
    outcome = ChannelOutcome(name, "email")
    assert str(outcome) == f"{name}:email"
    assert f"offer:{outcome}" == f"offer:{name}:email"
    assert ChannelOutcome.parse(str(outcome)) == outcome


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("sent:email", ChannelOutcome("sent", "email")),
        ("no_consent:sms", ChannelOutcome("no_consent", "sms")),
        ("deferred:push", ChannelOutcome("deferred", "push")),
        ("retry:sms", ChannelOutcome("retry", "sms")),
        ("template_error:email", ChannelOutcome("template_error", "email")),
        ("no_channel:whatsapp", ChannelOutcome("no_channel", "whatsapp")),
    ],
)
def test_stats_already_in_redis_parse(stored: str, expected: ChannelOutcome) -> None:
    """Counters written before the type existed (the stored format did not change) are read as before."""
    assert ChannelOutcome.parse(stored) == expected


@pytest.mark.parametrize(
    "stat", ["sent", "deferred", "cap_deferred", "rate_limited", "branch:vip", "split:a", "sent:", "snet:email", ""]
)
def test_other_stats_are_not_channel_outcomes(stat: str) -> None:
    """The engine's step summaries, branch and split counters and unknown names are not outcomes on a channel."""
    assert ChannelOutcome.parse(stat) is None


def test_delivery_outcomes_read_from_redis_are_checked() -> None:
    """A ``done:<outcome>`` mark read back is an outcome only when the engine knows it."""
    assert is_delivery_outcome("sent") and is_delivery_outcome("failed")
    assert not is_delivery_outcome("snet") and not is_delivery_outcome("retry")


SNIPPET = """\
from orchestrator.engine.enrollment import ChannelOutcome, Delivered
from orchestrator.runtime.attempts import AttemptResult
ChannelOutcome("snet", "email")
Delivered("offer", "snet", "email")
AttemptResult("snet", "email")
ChannelOutcome("sent", "email")
Delivered("offer", "no_consent", "email")
AttemptResult("rate_limited", "email")
"""


def test_a_misspelt_outcome_is_a_type_error() -> None:
    """mypy (strict, as CI runs it) rejects an outcome name that does not exist, wherever one is made."""
    options = ["--config-file", "/dev/null", "--strict", "--python-version", "3.11", "--cache-dir", "/dev/null"]
    limit = sys.getrecursionlimit()
    try:
        out, _err, status = mypy_api.run([*options, "--follow-imports=silent", "-c", SNIPPET])
    finally:
        sys.setrecursionlimit(limit)  # mypy raises it for itself and leaves it raised for later tests
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1
    assert [line.split(":")[1] for line in errors] == ["3", "4", "5"], out
    assert all("snet" in line for line in errors)
