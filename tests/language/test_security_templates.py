"""Templates and conditions are untrusted: a marketer's text must not be able to cost a worker.

Each test reproduces a probe: a template that allocated 343 MB (``('a'*300000000)|length``),
nested loops that held a worker, and the other ways to make a large value (padding, powers,
joins, doubling in a loop).  At run time each is refused within the message's budget, before it
allocates; where it can be seen in the text, ``loyaloop validate`` refuses it first.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine import conditions
from orchestrator.errors import TemplateError
from orchestrator.language import limits
from orchestrator.language.render import Renderer
from orchestrator.language.template_checks import TEMPLATE_NAMES, CheckContext, Scope, check_template_file

SCOPE = Scope(TEMPLATE_NAMES, {"items", "n", "text"}, {"items", "n"}, {"first_name", "id"})
CONTEXT: dict[str, Any] = {"profile": {"first_name": "Ada"}, "event": {}, "trigger": {}}


def render_sms(tmp_path: Path, source: str, event: dict[str, Any] | None = None) -> str:
    folder = tmp_path / "sms"
    folder.mkdir(exist_ok=True)
    (folder / "probe.txt.j2").write_text(source, encoding="utf-8")
    return Renderer(tmp_path).render("sms", "probe", None, {**CONTEXT, "event": event or {}}).body


def refused_quickly(tmp_path: Path, source: str, event: dict[str, Any] | None = None) -> str:
    """Render and expect a refusal within a second, with less than 20 MB allocated on the way."""
    tracemalloc.start()
    started = time.process_time()  # CPU time: a busy machine does not move it
    try:
        with pytest.raises(TemplateError) as refused:
            render_sms(tmp_path, source, event)
        elapsed = time.process_time() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 20_000_000
    return str(refused.value)


PROBES = {
    "string repetition": "{{ ('a' * 300000000)|length }}",
    "list repetition": "{{ ([0] * 300000000)|length }}",
    "repetition of a large item": "{{ (['a' * 100000] * 100000)|join }}",
    "percent padding": "{{ '%300000000d' % 1 }}",
    "starred percent padding": "{{ '%*d' % (300000000, 1) }}",
    "format padding": "{{ '{:>300000000}'.format(1) }}",
    "nested format padding": "{{ '{:>{w}}'.format(1, w=300000000) }}",
    "format filter padding": "{{ '%300000000s'|format('x') }}",
    "center filter": "{{ 'x'|center(300000000) }}",
    "huge power": "{{ (10 ** 10000000)|string|length }}",
    "nested range loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "doubling in a loop": (
        "{% set ns = namespace(x='ab') %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}"
        "{{ ns.x|length }}"
    ),
    "adding in a loop": (
        "{% set ns = namespace(x=['ab']) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}"
        "{{ ns.x|length }}"
    ),
    "output in a long loop": "{% for i in range(9000) %}{{ 'a' * 1000 }}{% endfor %}",
    "captured output": "{% set big %}{% for i in range(9000) %}{{ 'a' * 1000 }}{% endfor %}{% endset %}{{ 1 }}",
    "recursive macro": "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
}


@pytest.mark.parametrize("source", PROBES.values(), ids=PROBES.keys())
def test_a_costly_template_is_refused_before_it_costs(tmp_path: Path, source: str) -> None:
    message = refused_quickly(tmp_path, source)
    assert "template sms/probe" in message


def test_loops_over_event_data_share_one_iteration_budget(tmp_path: Path) -> None:
    """Loops whose length comes from the event (nothing to see statically) are bounded at run time."""
    items = list(range(5_000))
    message = refused_quickly(
        tmp_path, "{% for a in event['items'] %}{% for b in event['items'] %}{% endfor %}{% endfor %}", {"items": items}
    )
    assert f"more than {limits.MAX_ITERATIONS:,} loop iterations" in message


def test_the_time_budget_stops_a_slow_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MESSAGE_SECONDS", 0.0)
    message = refused_quickly(tmp_path, "{% for i in range(300) %}{{ profile.first_name }}{% endfor %}")
    assert "time budget" in message


def test_ordinary_templates_render_as_before(tmp_path: Path) -> None:
    """Loops, joins, padding and arithmetic of an ordinary size are untouched by the bounds."""
    source = (
        "[{{ profile.first_name|center(9) }}]|{{ '%05d' % 42 }}|{{ '{:>4}'.format(7) }}|{{ 2 ** 10 }}|"
        "{% for i in range(3) %}{{ i }}{% endfor %}|{{ ['a', 'b']|join('-') }}|{{ 'x' * 3 ~ 'y' }}|"
        "{{ (event['items'] + [9])|length }}|{{ 'a-b'|replace('-', '+') }}"
    )
    assert render_sms(tmp_path, source, {"items": [1, 2]}) == "[   Ada   ]|00042|   7|1024|012|a-b|xxxy|3|a+b"


def test_the_html_escaping_of_joined_text_is_kept(tmp_path: Path) -> None:
    """``~`` in an HTML template still escapes what it joins (the bound wraps, never replaces, it)."""
    folder = tmp_path / "email"
    folder.mkdir()
    for part, text in (("subject", "Hi"), ("txt", "x"), ("html", "{{ '<b>' ~ profile.first_name }}")):
        (folder / f"probe.{part}.j2").write_text(text, encoding="utf-8")
    rendered = Renderer(tmp_path).render("email", "probe", None, {**CONTEXT, "profile": {"first_name": "<i>"}})
    assert rendered.html == "&lt;b&gt;&lt;i&gt;"


COSTLY_CONDITIONS = {
    "repetition": "('a' * 300000000)|length > 0",
    "power": "10 ** 10000000 > 0",
    "padding": "('%300000000d' % 1)|length > 0",
    "join": "(['a' * 100000] * 100000)|join|length > 0",
}


@pytest.mark.parametrize("expression", COSTLY_CONDITIONS.values(), ids=COSTLY_CONDITIONS.keys())
def test_a_costly_condition_is_refused(expression: str) -> None:
    started = time.process_time()  # CPU time: a busy machine does not move it
    with pytest.raises(TemplateError, match="too costly"):
        conditions.evaluate(expression, CONTEXT)
    assert time.process_time() - started < 1.0


STATIC = {
    "repetition": ("{{ ('a' * 300000000)|length }}", "repeating a value 300,000,000 times"),
    "power": ("{{ 10 ** 10000000 }}", "10 ** 10000000, too large a number to compute"),
    "range": ("{% for i in range(1000000000) %}{% endfor %}", "range of 1,000,000,000 numbers"),
    "nested loops": (
        "{% for i in range(1000) %}\n{% for j in range(1000) %}{% endfor %}{% endfor %}",
        "loops that run 1,000,000 times",
    ),
    "padding": ("{{ '%300000000d' % 1 }}", "the width '300000000'"),
    "center": ("{{ 'x'|center(300000000) }}", "the 'center' filter with a width of 300,000,000"),
}


@pytest.mark.parametrize(("source", "expected"), STATIC.values(), ids=STATIC.keys())
def test_validate_refuses_what_it_can_see(tmp_path: Path, source: str, expected: str) -> None:
    path = tmp_path / "sms" / "probe.txt.j2"
    path.parent.mkdir()
    path.write_text(source, encoding="utf-8")
    problems = check_template_file(path, "sms/probe.txt.j2", SCOPE, CheckContext(templates_dir=tmp_path))
    assert [p.message for p in problems if expected in p.message], [p.message for p in problems]
    assert all("too costly to render" in p.message for p in problems)


def test_validate_accepts_ordinary_loops_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "sms" / "probe.txt.j2"
    path.parent.mkdir()
    path.write_text(
        "{% for i in range(10) %}{% for j in range(100) %}{{ '%05d' % j }}{% endfor %}{% endfor %}{{ 'x' * 80 }}",
        encoding="utf-8",
    )
    assert check_template_file(path, "sms/probe.txt.j2", SCOPE, CheckContext(templates_dir=tmp_path)) == []
