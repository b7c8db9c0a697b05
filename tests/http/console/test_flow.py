"""A journey drawn as a flow: every step and edge from the YAML, figures from the stats, text escaped."""

from __future__ import annotations

import re

from orchestrator.http.console.flow import flow_graph, flow_svg, step_figures
from orchestrator.language.journey import Journey

JOURNEY = Journey.model_validate(
    {
        "id": "flowtest",
        "name": "Flow test",
        "trigger": {"event": "signed.up", "if": "event.source != '<script>alert(1)</script>'"},
        "goals": [{"event": "order.placed"}],
        "steps": [
            {"id": "hello", "send": "email", "template": "hello", "fallback": ["sms"]},
            {"id": "pick", "branch": [{"if": 'profile.tier == "gold" & 1 < 2', "goto": "vip"}], "else": "ab"},
            {
                "id": "ab",
                "split": [
                    {"name": "a", "percent": 50, "goto": "wait_order"},
                    {"name": "b", "percent": 50, "goto": "bye"},
                ],
            },
            {"id": "wait_order", "wait": {"event": "order.placed", "timeout": "3d", "on_timeout": "bye"}},
            {"id": "vip", "update": {"set": {"vip": True}}},
            {"id": "bye", "exit": "done"},
        ],
        "version": "v1",
    }
)
STATS = {
    "_journey:entered": 12,
    "_journey:holdout": 2,
    "_journey:converted": 3,
    "hello:sent:email": 5,
    "hello:sent:sms": 2,
    "hello:sent": 7,  # the engine's step summary: not counted again
    "hello:capped:email": 1,
    "hello:deferred:sms": 4,
    "hello:no_consent:email": 1,
    "hello:suppressed:sms": 1,
    "hello:failed:email": 1,
    "hello:undeliverable": 2,
    "hello:holdout": 2,
    "pick:branch:vip": 6,
    "wait_order:timeout": 3,
}


def test_figures_come_from_the_stats_summed_over_channels() -> None:
    figures = step_figures(JOURNEY, STATS)
    hello = figures["hello"]
    assert (hello.get("sent"), hello.get("capped"), hello.get("deferred")) == (7, 1, 4)
    # "undeliverable" (no channel could reach the customer) shows through its channels' reasons,
    # not as a failure: the only failure is the provider's on e-mail.
    assert (hello.get("no consent"), hello.get("failed"), hello.get("held")) == (2, 1, 2)
    assert figures["_trigger"].figures == (("entered", 12), ("held", 2))
    assert figures["pick"].figures == (("branch:vip", 6),)
    assert figures["wait_order"].figures == (("timeout", 3),)
    assert figures["vip"].figures == ()


def test_every_step_and_edge_is_drawn() -> None:
    source = flow_graph(JOURNEY, step_figures(JOURNEY, STATS)).source
    for edge in (
        "_trigger -> hello",
        "hello -> pick",
        "pick -> vip",
        "pick -> ab",
        "ab -> wait_order",
        "ab -> bye",
        "wait_order -> vip",  # the event continues with the next step
        "wait_order -> bye",
        "vip -> bye",
        "bye -> _exit",
    ):
        assert edge in source, edge


def test_svg_has_step_ids_and_shows_conditions_as_text() -> None:
    svg = flow_svg(JOURNEY, STATS)
    assert svg.startswith("<svg")
    for step in ("hello", "pick", "ab", "wait_order", "vip", "bye", "_trigger", "_end", "_exit"):
        assert re.search(rf'id="step(-|&#45;){step}"', svg), step
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "sent 7 · capped 1 · deferred 4" in svg


def test_template_errors_count_as_failed_and_failed_runs_show_at_the_end() -> None:
    """A template that could not render is a failed send; a run whose last send failed ends ``failed``."""
    stats = {"hello:template_error:push": 2, "hello:failed:email": 1, "_journey:failed": 4, "_journey:completed": 5}
    figures = step_figures(JOURNEY, stats)
    assert figures["hello"].get("failed") == 3
    assert figures["_end"].figures == (("completed", 5), ("failed", 4))
