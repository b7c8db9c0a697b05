"""What a template or condition may use, and whether its files are there and well-formed.

Split from :mod:`orchestrator.language.checks` (which knows journeys) because these checks know only
sources and scopes: the names an expression may use, the catalogue fields behind ``profile.``,
``event.`` and ``trigger.``, the sandbox rules, and the template files of a channel.  A checked
template file is remembered per scope, so nine journeys sharing a layout parse it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateAssertionError
from jinja2.parser import Parser

from orchestrator.errors import Problem
from orchestrator.language.catalogue import Catalogue
from orchestrator.language.limits import costly_constructs
from orchestrator.language.located import did_you_mean
from orchestrator.language.render import LOCALE, environment, optional_parts, required_parts, template_files
from orchestrator.language.sandbox import GuardedEnvironment, first_use, references, unsafe_accesses
from orchestrator.language.yamlfile import DataPath, YamlDocument

DEFAULT_CHANNELS = frozenset({"email", "sms", "push", "outbox"})
#: Names every condition may use; templates also get ``step`` and ``unsubscribe_url``.
CONDITION_NAMES = ("profile", "event", "trigger", "now", "journey")
#: Names that ``mapping.name`` resolves to a dict method rather than the key.
DICT_METHODS = frozenset(dir(dict))
TEMPLATE_NAMES = (*CONDITION_NAMES, "step", "unsubscribe_url")
#: What a send step with ``voucher:`` adds to its templates' names.
VOUCHER = "voucher"
FIXED_FIELDS = {"journey": {"id", "name"}, "step": {"id"}, VOUCHER: {"code"}}


@dataclass
class Scope:
    """What an expression may see: which names, and which fields of ``event`` and ``trigger``."""

    names: tuple[str, ...]
    event_fields: set[str] | None
    trigger_fields: set[str] | None
    profile_fields: set[str] | None
    #: Fields of ``step`` besides ``id``: what the journey's ``action`` steps keep (``save_as``);
    #: None leaves ``step`` unchecked (a template checked outside any journey).
    step_fields: frozenset[str] | None = frozenset()


@dataclass
class CheckContext:
    """Everything the cross-checks need besides the journey itself."""

    templates_dir: Path
    catalogue: Catalogue | None = None
    channels: frozenset[str] = DEFAULT_CHANNELS
    env: GuardedEnvironment | None = None
    default_locale: str = "en"
    #: The voucher pools settings declare (None: not checked, e.g. a journey checked on its own).
    vouchers: frozenset[str] | None = None
    #: The endpoints settings declare for ``action`` steps (None: not checked).
    endpoints: frozenset[str] | None = None
    checked_files: dict[tuple[Path, str], list[Problem]] = field(default_factory=dict)

    def environment(self) -> GuardedEnvironment:
        if self.env is None:
            self.env = environment(self.templates_dir)
        return self.env


def check_source(
    env: GuardedEnvironment, source: str, scope: Scope, doc: YamlDocument, path: DataPath, *, template: bool
) -> list[Problem]:
    what = "template" if template else "condition"
    try:
        tree: nodes.Node = (
            Parser(env, source).parse() if template else nodes.Template([nodes.Output([_parse_expr(env, source)])])
        )
        tree.set_environment(env)
    except TemplateSyntaxError as exc:
        return [doc.problem(path, f"{what} {source!r} does not parse: {exc.message}", _syntax_hint(source))]
    return [doc.problem(path, f"{what} {source!r}: {message}", hint) for _, message, hint in analyse(env, tree, scope)]


def _parse_expr(env: GuardedEnvironment, source: str) -> nodes.Expr:
    return env.parse_expression(source)


def _syntax_hint(source: str) -> str:
    if "{{" in source or "}}" in source:
        return "conditions are written without {{ }}: e.g. profile.orders_count == 0"
    if "=" in source and "==" not in source and "!=" not in source and "<=" not in source and ">=" not in source:
        return "compare with '==', not '='"
    return "conditions use Jinja2 syntax: e.g. event.total > 50 and profile.tier == 'gold'"


def analyse(env: GuardedEnvironment, tree: nodes.Node, scope: Scope) -> list[tuple[int, str, str]]:
    """``(line, message, hint)`` for unsafe access and undefined names/fields in a parsed tree."""
    out: list[tuple[int, str, str]] = []
    for line, what in unsafe_accesses(tree):
        out.append(
            (
                line,
                f"{what} is not allowed (it could escape the sandbox)",
                "use only the fields of profile, event and trigger",
            )
        )
    for line, what in costly_constructs(tree):
        out.append((line, f"{what} is too costly to render", "loop over fewer items and build smaller values"))
    if out:
        return out
    allowed = set(scope.names) | set(env.globals)
    template_tree = tree if isinstance(tree, nodes.Template) else nodes.Template([nodes.Output([tree])])
    template_tree.set_environment(env)
    declared = _locally_declared(tree)
    try:
        undeclared = meta.find_undeclared_variables(template_tree)
    except TemplateAssertionError as exc:  # an unknown filter or test
        hint = (
            did_you_mean(_quoted(exc.message or ""), [*env.filters, *env.tests]) or "see docs/journeys.md for filters"
        )
        return [(exc.lineno or 1, f"template error: {exc.message}", hint)]
    for name in sorted(undeclared):
        # A child template's top-level {% set %} is visible in its blocks at run time, although
        # jinja2.meta analyses each block on its own: names set anywhere count as declared.
        if name not in allowed and name not in declared:
            hint = did_you_mean(name, allowed) or f"available: {', '.join(sorted(scope.names))}"
            out.append((first_use(tree, name), f"{name!r} is undefined", hint))
    fields: dict[str, set[str] | None] = {
        "profile": scope.profile_fields,
        "event": scope.event_fields,
        "trigger": scope.trigger_fields,
        **FIXED_FIELDS,
        "step": None if scope.step_fields is None else {"id", *scope.step_fields},
    }
    for ref in references(tree):
        known = fields.get(ref.root)
        if known is not None and not ref.subscript and ref.field in DICT_METHODS and ref.root not in declared:
            out.append(
                (
                    ref.line,
                    f"{ref.root}.{ref.field} is the mapping's built-in {ref.field!r} method, not the field",
                    f"write {ref.root}['{ref.field}'] instead",
                )
            )
            continue
        if known is None or ref.root in declared or ref.field in known:
            continue
        where = {
            "profile": "a profile field",
            "event": "a property of this event",
            "trigger": "a property of the trigger event",
        }
        hint = did_you_mean(ref.field, known) or (
            "add it to catalogue.yaml"
            if ref.root in ("profile", "event", "trigger")
            else f"known: {', '.join(sorted(known))}"
        )
        out.append((ref.line, f"{ref.root}.{ref.field} is not {where.get(ref.root, 'defined')}", hint))
    return list(dict.fromkeys(out))


def _locally_declared(tree: nodes.Node) -> set[str]:
    names: set[str] = set()
    for node in tree.find_all(nodes.Name):
        if node.ctx in ("store", "param"):
            names.add(node.name)
    return names


def check_template(
    name: str, channel: str, doc: YamlDocument, path: DataPath, scope: Scope, ctx: CheckContext
) -> list[Problem]:
    files = template_files(ctx.templates_dir, channel, name)
    problems: list[Problem] = []
    need = required_parts(channel)
    by_locale: dict[str | None, dict[str, Path]] = {}
    for item in files:
        by_locale.setdefault(item.locale, {})[item.part] = item.path
    default = by_locale.get(None) or by_locale.get(ctx.default_locale) or {}
    missing = [part for part in need if part not in default]
    if missing:
        expected = ", ".join(f"{channel}/{name}.{part}.j2" for part in missing)
        if not files:
            message = f"template {name!r} does not exist for channel {channel!r}"
            close = did_you_mean(name, template_names(ctx.templates_dir, channel))
            if close:
                problems.append(doc.problem(path, message, close))
                return problems
        else:
            message = (
                f"template {name!r} for {channel!r} lacks the {'/'.join(missing)} part{'s' if len(missing) > 1 else ''}"
            )
        problems.append(doc.problem(path, message, f"create {expected} in {ctx.templates_dir}"))
    for locale, parts in by_locale.items():
        if locale is None or (locale == ctx.default_locale and None not in by_locale):
            continue
        lacking = [part for part in need if part not in parts]
        if lacking:
            first = min(parts.values())
            problems.append(
                Problem(
                    str(first),
                    1,
                    1,
                    f"the {locale!r} version of {channel} template {name!r} lacks the {'/'.join(lacking)} part; "
                    f"customers with locale {locale!r} get the default version",
                    f"add {channel}/{name}.{locale}.{lacking[0]}.j2 or remove the other {locale!r} parts",
                )
            )
    allowed = set(need) | set(optional_parts(channel))
    for item in files:
        if item.part not in allowed:
            continue
        problems += check_template_file(item.path, f"{item.channel}/{item.relative}", scope, ctx)
    return problems


def template_names(templates_dir: Path, channel: str) -> set[str]:
    """The names of the templates a channel's folder holds (for "did you mean")."""
    folder = Path(templates_dir) / channel
    if not folder.is_dir():
        return set()
    names = set()
    for path in folder.rglob("*.j2"):
        relative = path.relative_to(folder)
        stem = relative.name.split(".", 1)[0]
        names.add(stem if relative.parent == Path(".") else f"{relative.parent.as_posix()}/{stem}")
    return names


def missing_template(name: Any, channel: Any, doc: YamlDocument, path: DataPath, ctx: CheckContext) -> Problem | None:
    """For a journey file that failed the model pass: a send step's template that does not exist
    (names only, no parts or content), so it is reported together with the file's other problems."""
    if not isinstance(name, str) or not isinstance(channel, str) or channel not in ctx.channels:
        return None
    if template_files(ctx.templates_dir, channel, name):
        return None
    hint = did_you_mean(name, template_names(ctx.templates_dir, channel))
    create = f"create {channel}/{name}.<part>.j2 in {ctx.templates_dir}"
    return doc.problem(path, f"template {name!r} does not exist for channel {channel!r}", hint or create)


def check_template_file(path: Path, loader_name: str, scope: Scope, ctx: CheckContext) -> list[Problem]:
    """Syntax, sandbox and variable problems of one template file (and the layouts it extends)."""
    steps = None if scope.step_fields is None else sorted(scope.step_fields)
    key = (path, repr((sorted(scope.names), sorted(scope.event_fields or []), scope.event_fields is None, steps)))
    if key in ctx.checked_files:
        return ctx.checked_files[key]
    env = ctx.environment()
    shown = str(path)
    problems: list[Problem] = []
    ctx.checked_files[key] = problems  # guards against templates that include each other
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, 1, 1, f"cannot read the template: {exc}", "save it as UTF-8 text"))
        return problems
    try:
        tree = Parser(env, source, loader_name, shown).parse()
    except TemplateSyntaxError as exc:
        problems.append(
            Problem(shown, exc.lineno or 1, 1, f"template syntax error: {exc.message}", _template_hint(exc))
        )
        return problems
    for line, message, hint in analyse(env, tree, scope):
        problems.append(Problem(shown, line, 1, message, hint))
    if not problems:
        try:
            env.compile(tree, loader_name, shown)
        except TemplateAssertionError as exc:
            hint = (
                did_you_mean(_quoted(exc.message or ""), [*env.filters, *env.tests])
                or "see docs/journeys.md for filters"
            )
            problems.append(Problem(shown, exc.lineno or 1, 1, f"template error: {exc.message}", hint))
    for referenced in meta.find_referenced_templates(tree):
        if referenced is None:
            continue
        target = ctx.templates_dir / referenced
        if not target.is_file():
            problems.append(
                Problem(
                    shown,
                    first_line_of(source, referenced),
                    1,
                    f"refers to a missing template {referenced!r}",
                    "check the file name under templates/",
                )
            )
        else:
            problems += check_template_file(target, referenced, scope, ctx)
    return problems


def _quoted(message: str) -> str:
    start = message.find("'")
    end = message.find("'", start + 1)
    return message[start + 1 : end] if 0 <= start < end else ""


def first_line_of(source: str, needle: str) -> int:
    for number, line in enumerate(source.splitlines(), start=1):
        if needle in line:
            return number
    return 1


def _template_hint(exc: TemplateSyntaxError) -> str:
    message = exc.message or ""
    if "print statement" in message:
        return "close every {{ with }}"
    if any(tag in message for tag in ("endif", "endfor", "endblock", "endmacro")):
        return (
            "every {% if %} needs an {% endif %}, every {% for %} an {% endfor %}, every {% block %} an {% endblock %}"
        )
    return "check that the {{ }} and {% %} tags are balanced and closed"


def check_templates_folder(ctx: CheckContext) -> tuple[int, list[Problem]]:
    """Every ``.j2`` file under the templates folder, used by a journey or not: naming, syntax, sandbox.

    A template nobody sends yet is still checked, so a broken file never waits in the folder for
    the day a journey starts using it.  Returns the number of files and their problems.
    """
    root = ctx.templates_dir
    if not root.is_dir():
        return 0, [Problem(str(root), 1, 1, "the templates folder does not exist", "pass --templates DIR")]
    # Any template may serve a voucher step, or read what any action step kept.
    scope = Scope((*TEMPLATE_NAMES, VOUCHER), None, None, None, step_fields=None)
    problems: list[Problem] = []
    paths = sorted(root.rglob("*.j2"))
    for path in paths:
        relative = path.relative_to(root).as_posix()
        pieces = path.name[: -len(".j2")].split(".")
        if "/" not in relative:
            problems.append(
                Problem(
                    str(path), 1, 1, "templates live in a folder per channel", "move it to <channel>/<name>.<part>.j2"
                )
            )
        elif not path.name.startswith("_"):
            channel = relative.split("/", 1)[0]
            allowed = (*required_parts(channel), *optional_parts(channel))
            part = pieces[-1]
            if len(pieces) not in (2, 3) or part not in allowed:
                problems.append(
                    Problem(
                        str(path),
                        1,
                        1,
                        f"{path.name!r} is not named <name>[.<locale>].<part>.j2 with a {channel} part",
                        did_you_mean(part, allowed) or f"{channel} parts: {', '.join(allowed)}",
                    )
                )
                continue
            if len(pieces) == 3 and not LOCALE.match(pieces[1]):
                problems.append(
                    Problem(
                        str(path),
                        1,
                        1,
                        f"{pieces[1]!r} is not a locale",
                        "write a language code such as 'nl' or 'nl-BE'",
                    )
                )
                continue
        problems += check_template_file(path, relative, scope, ctx)
    return len(paths), problems
