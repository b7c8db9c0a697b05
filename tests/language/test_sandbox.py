"""The sandbox guard: escape attempts are found in the syntax tree, before anything runs."""

from __future__ import annotations

from datetime import datetime

import pytest

from orchestrator.engine.conditions import check_syntax, environment, evaluate
from orchestrator.errors import TemplateError
from orchestrator.language.sandbox import GuardedEnvironment, references, unsafe_accesses


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("''.__class__.__mro__", {"access to '__class__'", "access to '__mro__'"}),
        ("cycler.__init__.__globals__", {"access to '__init__'", "access to '__globals__'"}),
        ("x.mro()", {"access to 'mro'"}),
        ("x['__globals__']", {"access to '__globals__'"}),
        ("x | map(attribute='__class__') | list", {"access to '__class__' through the 'map' filter"}),
        ("'__class__'", {"the internal name '__class__'"}),
        ("_private", {"the internal name '_private'"}),
        ("profile.first_name ~ event['total']", set()),
    ],
)
def test_unsafe_access_is_found_statically(source: str, found: set[str]) -> None:
    """Every dunder, ``mro`` or ``__globals__`` reach is found in the syntax tree before it runs."""
    tree = environment().parse_expression(source)
    assert {what for _, what in unsafe_accesses(tree)} == found


def test_references_find_attribute_and_subscript_uses() -> None:
    tree = environment().parse_expression("profile.first_name ~ event['total'] ~ item.sku")
    assert {(r.root, r.field, r.subscript) for r in references(tree)} == {
        ("profile", "first_name", False),
        ("event", "total", True),
        ("item", "sku", False),
    }


def test_conditions_refuse_escapes_when_compiled() -> None:
    """conditions.evaluate refuses an escape even if validation was skipped."""
    assert check_syntax("''.__class__") is not None
    with pytest.raises(TemplateError, match=r"unsafe|not allowed"):
        evaluate("cycler.__init__.__globals__", {})
    assert evaluate("now + days(2) > now", {"now": datetime(2026, 1, 1)}) is True


def test_templates_with_escapes_do_not_compile() -> None:
    """from_string (used for update values) refuses an escape when the template is parsed."""
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError, match="access to '__globals__'"):
        GuardedEnvironment().from_string("{{ cycler.__init__.__globals__ }}")
    assert GuardedEnvironment().from_string("{{ (now + days(1)).day }}").render(now=datetime(2026, 1, 31)) == "1"


def test_plugin_filters_can_be_added_to_conditions() -> None:
    """Filters the plugins offer to templates work in conditions too, once added."""
    from orchestrator.engine.conditions import add_extensions

    assert check_syntax("profile.id | loyaloop_test_shout == 'X'") is not None
    add_extensions(filters={"loyaloop_test_shout": str.upper}, globals={"loyaloop_test_brand": "B"})
    assert evaluate("profile.id | loyaloop_test_shout ~ loyaloop_test_brand", {"profile": {"id": "x"}}) == "XB"
