"""A condition that cannot be evaluated for this customer, or tries to leave the sandbox, ends
the run as ``condition_error`` instead of crashing the worker."""

from __future__ import annotations

from orchestrator.engine.enrollment import Finish, Record
from tests.engine.builders import journey, only, start


def test_condition_error_exits_without_crashing() -> None:
    """A condition that fails on this customer's data ends the run as ``condition_error``."""
    flow = journey(
        [
            {"id": "check", "branch": [{"if": "profile.no_such_field > 3", "goto": "x"}]},
            {"id": "x", "send": "email", "template": "x"},
        ]
    )
    d = start(flow)
    assert Record("check", "condition_error") in d.actions
    assert only(d, Finish) == Finish("exited", "condition_error")
    assert d.enrollment.status == "exited"


def test_sandbox_escape_in_a_condition_is_a_condition_error() -> None:
    """An unsafe expression is refused by the sandbox and handled like any other bad condition."""
    flow = journey([{"id": "check", "branch": [{"if": "''.__class__.__mro__", "goto": "check"}]}])
    assert only(start(flow), Finish).reason == "condition_error"
