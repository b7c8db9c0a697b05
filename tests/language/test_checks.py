"""Cross-checks that need the whole journey: the step graph, scopes of variables, and the sandbox.

The broken-journey corpus covers each refusal once; these tests pin down the rules around them —
what is *accepted* (a loop with a wait in it, locals in templates) matters as much.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.language.catalogue import Catalogue, load_catalogue
from orchestrator.language.journey import Journey
from orchestrator.language.loader import load_journey_file

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue(ROOT / "journeys" / "catalogue.yaml")


def load_text(
    tmp_path: Path, body: str, *, catalogue: Catalogue | None = CATALOGUE, trigger: str = "order.placed"
) -> Journey:
    text = f"id: sample\nname: Sample\ntrigger:\n  event: {trigger}\n" + textwrap.dedent(body)
    path = tmp_path / "sample.yaml"
    path.write_text(text, encoding="utf-8")
    return load_journey_file(path, templates_dir=ROOT / "templates", catalogue=catalogue)


def messages(tmp_path: Path, body: str, **kwargs: object) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        load_text(tmp_path, body, **kwargs)  # type: ignore[arg-type]
    return [str(problem) for problem in caught.value.problems]


def test_a_loop_with_a_wait_is_fine(tmp_path: Path) -> None:
    """A weekly reminder loop is legitimate: the wait makes each round take time."""
    load_text(
        tmp_path,
        """\
        steps:
          - id: remind
            send: email
            template: winback_miss_you
          - id: week
            wait: 7d
          - id: again
            branch:
              - if: "profile.orders_count == 0"
                goto: remind
        """,
    )


def test_a_self_loop_without_wait_is_refused(tmp_path: Path) -> None:
    found = messages(
        tmp_path,
        """\
        steps:
          - id: spin
            update: {increment: {points: 1}}
            next: spin
        """,
    )
    assert found == [
        f"{tmp_path / 'sample.yaml'}:6:9: steps spin → spin form a loop with no wait in it; "
        "a customer would go round it forever "
        "(hint: add a wait step (a duration, 'until' or 'event') inside the loop, or leave it with an exit)"
    ]


def test_wait_outcomes_and_split_arms_make_steps_reachable(tmp_path: Path) -> None:
    """Steps reached only through on_event, on_timeout or a split arm are not 'unreachable'."""
    load_text(
        tmp_path,
        """\
        steps:
          - id: opened
            wait: {event: app.opened, timeout: 3d, on_event: ab, on_timeout: bye}
          - id: bye
            exit: true
          - id: ab
            split:
              - {name: email_first, percent: 50, goto: mail}
              - {name: push_first, percent: 50, goto: push}
          - id: mail
            send: email
            template: winback_miss_you
            next: bye
          - id: push
            send: push
            template: vip_early_access
        """,
    )


def test_a_step_after_an_exit_or_split_is_unreachable(tmp_path: Path) -> None:
    """A split never falls through, so the step after it needs a goto."""
    found = messages(
        tmp_path,
        """\
        steps:
          - id: ab
            split:
              - {name: a, percent: 50, goto: bye}
              - {name: b, percent: 50, goto: bye}
          - id: lost
            wait: 1d
          - id: bye
            exit: true
        """,
    )
    assert len(found) == 1 and "step 'lost' can never be reached" in found[0] and ":10:9:" in found[0]


def test_event_fields_follow_the_context(tmp_path: Path) -> None:
    """A wait's ``if`` sees the awaited event's properties; the trigger filter sees the trigger's."""
    load_text(
        tmp_path,
        """\
        steps:
          - id: await_friend
            wait:
              event: referral.converted
              if: "event.referrer_id == profile.id and trigger.total > 0"
              timeout: 30d
          - id: later
            branch:
              - if: "event.friend_id or event.total"
                goto: done
          - id: done
            exit: true
        """,
    )
    found = messages(
        tmp_path,
        """\
        steps:
          - id: await_friend
            wait:
              event: referral.converted
              if: "event.total > 0"
              timeout: 30d
        """,
    )
    assert "event.total is not a property of this event" in found[0]


def test_templates_see_the_fields_conditions_see(tmp_path: Path) -> None:
    """One scope rule: a template, like a condition, may use the trigger's and the awaited events'
    fields (an awaited event's properties are laid over the trigger's); any other field is refused."""
    templates = tmp_path / "templates" / "sms"
    templates.mkdir(parents=True)
    (templates / "t.txt.j2").write_text(
        "{% set n = trigger['items'] | length %}{{ n }} {{ event.total }} {{ event.friend_id }} {{ event.nope }}\n"
    )
    path = tmp_path / "j.yaml"
    path.write_text(
        "id: j\nname: J\ntrigger: {event: order.placed}\nsteps:\n"
        "  - id: w\n    wait: {event: referral.converted, timeout: 1d}\n  - id: s\n    send: sms\n    template: t\n"
    )
    with pytest.raises(ValidationFailed) as caught:
        load_journey_file(path, templates_dir=tmp_path / "templates", catalogue=CATALOGUE)
    [problem] = caught.value.problems
    assert "event.nope is not a property of this event" in problem.message


def test_without_a_catalogue_only_names_are_checked(tmp_path: Path) -> None:
    """No catalogue: any profile/event field is accepted, unknown root names still are not."""
    load_text(
        tmp_path,
        'audience: "profile.anything and event.whatever"\nsteps:\n  - id: bye\n    exit: true\n',
        catalogue=None,
    )
    found = messages(tmp_path, 'audience: "profil.anything"\nsteps:\n  - id: bye\n    exit: true\n', catalogue=None)
    assert "'profil' is undefined (hint: did you mean 'profile'?)" in found[0]


def test_loop_variables_and_sets_are_not_undefined(tmp_path: Path) -> None:
    """Names a template declares itself (for, set, macro arguments) are not catalogue fields."""
    load_text(
        tmp_path,
        """\
        steps:
          - id: note
            update:
              set:
                summary: "{% for item in trigger['items'] %}{{ item.sku }}{% endfor %}{% set x = 1 %}{{ x }}"
          - id: bye
            exit: true
        """,
    )


def test_a_wait_at_a_computed_moment_does_not_break_a_loop(tmp_path: Path) -> None:
    """``wait: {at: …}`` continues at once when the moment has passed, so it cannot make a loop safe."""
    found = messages(
        tmp_path,
        """\
        steps:
          - id: moment
            wait: {at: "now"}
          - id: again
            branch:
              - if: "profile.orders_count == 0"
                goto: moment
        """,
    )
    assert len(found) == 1 and "steps moment → again → moment form a loop with no wait in it" in found[0]
