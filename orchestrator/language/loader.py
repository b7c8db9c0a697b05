"""YAML journey files → :class:`~orchestrator.language.journey.Journey`, or every problem with its position.

Three passes, each collecting rather than stopping: YAML (tabs, duplicate keys, syntax), the
typed model (unknown keys, wrong types, bad durations), then the cross-checks in
:mod:`orchestrator.language.checks` (graph, templates, catalogue, sandbox).  A file that fails an earlier
pass is not checked further — its later problems would be guesses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import Problem, ValidationFailed
from orchestrator.language.catalogue import CATALOGUE_FILE, Catalogue, load_catalogue
from orchestrator.language.checks import DEFAULT_CHANNELS, CheckContext, check_journey
from orchestrator.language.journey import Journey
from orchestrator.language.located import problems_from
from orchestrator.language.render import environment
from orchestrator.language.template_checks import missing_template
from orchestrator.language.yamlfile import YamlDocument, parse_yaml, read_file_text
from orchestrator.settings import SETTINGS_FILE

#: Files in the journeys folder that are not journeys.
NOT_JOURNEYS = frozenset({SETTINGS_FILE, CATALOGUE_FILE})
SUFFIXES = (".yaml", ".yml")


def version_of(content: bytes) -> str:
    """A short content hash: enrollments remember which version of a journey they started on."""
    return hashlib.sha256(content).hexdigest()[:12]


def parse_journey(doc: YamlDocument, version: str) -> Journey:
    """Validate parsed YAML against the model; problems carry the YAML positions."""
    if doc.data is None:
        raise ValidationFailed(
            [doc.problem((), "the file is empty", "start with 'id:', 'name:', 'trigger:' and 'steps:'")]
        )
    if not isinstance(doc.data, dict):
        raise ValidationFailed(
            [
                doc.problem(
                    (),
                    f"expected a mapping of journey keys at the top, got {type(doc.data).__name__}",
                    "start with 'id:', 'name:', 'trigger:' and 'steps:'",
                )
            ]
        )
    if "version" in doc.data:
        raise ValidationFailed(
            [doc.problem(("version",), "'version' is computed from the file's content", "remove the key", at_key=True)]
        )
    try:
        journey = Journey.model_validate(doc.data)
    except ValidationError as exc:
        raise ValidationFailed(sort_problems(problems_from(exc, doc, Journey))) from None
    return journey.model_copy(update={"version": version})


def load_journey_file(
    path: Path,
    *,
    templates_dir: Path,
    catalogue: Catalogue | None = None,
    channels: Iterable[str] | None = None,
    default_locale: str = "en",
    context: CheckContext | None = None,
) -> Journey:
    """Load and fully check one journey file; raises :class:`ValidationFailed` with every problem."""
    journey, _ = _load(path, _context(templates_dir, catalogue, channels, default_locale, context))
    return journey


def _context(
    templates_dir: Path,
    catalogue: Catalogue | None,
    channels: Iterable[str] | None,
    default_locale: str,
    context: CheckContext | None,
) -> CheckContext:
    if context is not None:
        return context
    return CheckContext(
        templates_dir=Path(templates_dir),
        catalogue=catalogue,
        channels=frozenset(channels) if channels is not None else DEFAULT_CHANNELS,
        env=environment(Path(templates_dir)),
        default_locale=default_locale,
    )


def _load(path: Path, ctx: CheckContext) -> tuple[Journey, YamlDocument]:
    content, text = read_file_text(path)
    doc = parse_yaml(text, str(path))
    try:
        journey = parse_journey(doc, version_of(content))
    except ValidationFailed as exc:
        # The typed model refused the file, so the cross-checks cannot run; the template names can
        # still be checked on the raw steps, so a misspelt template is reported with a bad duration.
        raise ValidationFailed(sort_problems([*exc.problems, *_raw_template_problems(doc, ctx)])) from None
    problems = check_journey(journey, doc, ctx)
    if problems:
        raise ValidationFailed(sort_problems(problems))
    return journey, doc


def _raw_template_problems(doc: YamlDocument, ctx: CheckContext) -> list[Problem]:
    steps = doc.data.get("steps") if isinstance(doc.data, dict) else None
    if not isinstance(steps, list):
        return []
    found = (
        missing_template(step.get("template"), step.get("send"), doc, ("steps", index, "template"), ctx)
        for index, step in enumerate(steps)
        if isinstance(step, dict)
    )
    return [problem for problem in found if problem is not None]


def journey_files(journeys_dir: Path) -> list[Path]:
    """The journey files of a folder, in name order (settings and catalogue excluded)."""
    return sorted(
        path
        for path in Path(journeys_dir).iterdir()
        if path.is_file() and path.suffix in SUFFIXES and path.name not in NOT_JOURNEYS
    )


def load_catalogue_for(journeys_dir: Path) -> Catalogue | None:
    """``journeys/catalogue.yaml`` if there is one (else variables are only checked by name)."""
    path = Path(journeys_dir) / CATALOGUE_FILE
    return load_catalogue(path) if path.is_file() else None


def load_journeys(
    journeys_dir: Path,
    templates_dir: Path,
    *,
    channels: set[str] | None = None,
    default_locale: str = "en",
    files: Iterable[Path] | None = None,
    filters: dict[str, Callable[..., Any]] | None = None,
    globals: dict[str, Any] | None = None,
    vouchers: Iterable[str] | None = None,
    endpoints: Iterable[str] | None = None,
) -> dict[str, Journey]:
    """Every journey of a folder by id; raises :class:`ValidationFailed` with the problems of all files.

    ``channels`` are the names the plugin registry knows; ``filters`` and ``globals`` are the
    plugins' template additions, so templates using them validate; ``vouchers`` the pools settings
    declare (None leaves a step's pool unchecked), ``endpoints`` the endpoints (likewise).
    """
    problems: list[Problem] = []
    catalogue: Catalogue | None = None
    try:
        catalogue = load_catalogue_for(journeys_dir)
    except ValidationFailed as exc:
        problems.extend(exc.problems)
    ctx = _context(templates_dir, catalogue, channels, default_locale, None)
    ctx.env = environment(Path(templates_dir), filters, globals)
    ctx.vouchers = frozenset(vouchers) if vouchers is not None else None
    ctx.endpoints = frozenset(endpoints) if endpoints is not None else None
    journeys: dict[str, Journey] = {}
    where: dict[str, tuple[YamlDocument, str]] = {}
    for path in files if files is not None else journey_files(journeys_dir):
        try:
            journey, doc = _load(path, ctx)
        except ValidationFailed as exc:
            problems.extend(exc.problems)
            continue
        if journey.id in journeys:
            first_doc, _ = where[journey.id]
            line = first_doc.where(("id",))[0]
            problems.append(
                doc.problem(
                    ("id",),
                    f"duplicate journey id {journey.id!r}: {first_doc.path}:{line} uses it too",
                    "give every journey its own id",
                )
            )
            continue
        journeys[journey.id] = journey
        where[journey.id] = (doc, path.name)
    if problems:
        raise ValidationFailed(sort_problems(problems))
    return journeys


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Unique problems in file, line, column order (how an editor lists them)."""
    return sorted(dict.fromkeys(problems), key=lambda p: (p.path, p.line, p.column))
