"""Template files: layouts, includes, unknown filters and the per-scope cache."""

from __future__ import annotations

from pathlib import Path

from orchestrator.language.template_checks import TEMPLATE_NAMES, CheckContext, Scope, check_template_file

SCOPE = Scope(TEMPLATE_NAMES, {"total"}, {"total"}, {"first_name", "id"})


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_layout_is_checked_through_the_template_extending_it(tmp_path: Path) -> None:
    """A mistake in the shared layout is reported at the layout's own line."""
    write(tmp_path, "email/_layout.html.j2", "<html>\n{% block content %}{% endblock %}\n{{ profile.frist_name }}\n")
    child = write(
        tmp_path, "email/a.html.j2", '{% extends "email/_layout.html.j2" %}{% block content %}x{% endblock %}'
    )
    problems = check_template_file(child, "email/a.html.j2", SCOPE, CheckContext(templates_dir=tmp_path))
    assert [(Path(p.path).name, p.line, p.message) for p in problems] == [
        ("_layout.html.j2", 3, "profile.frist_name is not a profile field")
    ]
    assert problems[0].hint == "did you mean 'first_name'?"


def test_a_missing_included_template_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "sms/a.txt.j2", "Hi\n{% include 'sms/footer.txt.j2' %}\n")
    [problem] = check_template_file(path, "sms/a.txt.j2", SCOPE, CheckContext(templates_dir=tmp_path))
    assert (problem.line, problem.message) == (2, "refers to a missing template 'sms/footer.txt.j2'")


def test_unknown_filters_get_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "sms/a.txt.j2", "{{ profile.first_name | uper }}\n")
    [problem] = check_template_file(path, "sms/a.txt.j2", SCOPE, CheckContext(templates_dir=tmp_path))
    assert problem.message == "template error: No filter named 'uper'."
    assert problem.hint == "did you mean 'upper'?"


def test_a_file_is_checked_once_per_scope(tmp_path: Path) -> None:
    """Journeys sharing a template and a scope share the result; another scope is checked anew."""
    path = write(tmp_path, "sms/a.txt.j2", "{{ event.total }}\n")
    ctx = CheckContext(templates_dir=tmp_path)
    assert check_template_file(path, "sms/a.txt.j2", SCOPE, ctx) == []
    path.write_text("{{ event.nope }}\n")
    assert check_template_file(path, "sms/a.txt.j2", SCOPE, ctx) == [], "cached for the same scope"
    other = Scope(TEMPLATE_NAMES, {"score"}, {"score"}, None)
    assert [p.message for p in check_template_file(path, "sms/a.txt.j2", other, ctx)] == [
        "event.nope is not a property of this event"
    ]
