"""The marketer's tools: ``validate``, ``schema`` and ``render``.

None of them needs Redis or a provider account: a marketer checks and previews their work on a
laptop.  ``validate`` prints *every* problem as ``path:line:col: message (hint: …)`` — the format
editors and CI annotate — and never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from orchestrator import plugins
from orchestrator.cli.preview import format_content, walk_text
from orchestrator.errors import InputError, LoyaloopError, Problem, ValidationFailed
from orchestrator.language.advice import journey_advice
from orchestrator.language.catalogue import CATALOGUE_FILE
from orchestrator.language.checks import CheckContext, check_templates_folder
from orchestrator.language.journey import EventTrigger, Journey, SendStep
from orchestrator.language.loader import journey_files, load_catalogue_for, load_journeys, sort_problems
from orchestrator.language.located import problems_from
from orchestrator.language.preview import render_step
from orchestrator.language.profile import Profile
from orchestrator.language.render import Renderer, environment
from orchestrator.language.schema import schema_text
from orchestrator.language.yamlfile import read_yaml_file
from orchestrator.settings import SETTINGS_FILE, Settings, environment_only_problems


def _default_dir(env_name: str, fallback: str) -> Path:
    return Path(os.environ.get(env_name, fallback))


def _settings(journeys_dir: Path) -> tuple[Settings, list[Problem]]:
    """The folder's settings, with any mistake in ``settings.yaml`` as located problems."""
    path = journeys_dir / SETTINGS_FILE
    if not path.is_file():
        return Settings(journeys_dir=journeys_dir), []
    try:
        doc = read_yaml_file(path)
    except ValidationFailed as exc:
        return Settings(journeys_dir=journeys_dir), exc.problems
    data = doc.data if isinstance(doc.data, dict) else {}
    if doc.data is not None and not isinstance(doc.data, dict):
        return Settings(journeys_dir=journeys_dir), [doc.problem((), "expected a mapping of settings")]
    if refused := environment_only_problems(doc, data):
        return Settings(journeys_dir=journeys_dir), refused
    try:
        return Settings.model_validate({**data, "journeys_dir": journeys_dir}), []
    except ValidationError as exc:
        return Settings(journeys_dir=journeys_dir), problems_from(exc, doc, Settings)


def _plugin_additions(settings: Settings) -> tuple[set[str] | None, dict[str, Callable[..., Any]], dict[str, Any]]:
    """Channel names and template additions from the installed plugins (defaults when unavailable)."""
    try:
        manager = plugins.get_plugin_manager()
        filters = plugins.template_filters(manager)
        globals_ = plugins.template_globals(manager)
        try:
            channels: set[str] | None = set(plugins.build_channels(settings, manager))
        except LoyaloopError as exc:
            click.echo(
                f"note: channel plugins not configured ({exc}); checking against the built-in channels", err=True
            )
            channels = None
        return channels, filters, globals_
    except LoyaloopError as exc:
        click.echo(f"note: plugins unavailable ({exc}); checking against the built-in channels", err=True)
        return None, {}, {}


def _template_additions(no_plugins: bool) -> tuple[dict[str, Callable[..., Any]], dict[str, Any]]:
    if no_plugins:
        return {}, {}
    try:
        manager = plugins.get_plugin_manager()
        return plugins.template_filters(manager), plugins.template_globals(manager)
    except LoyaloopError:
        return {}, {}


def _targets(paths: tuple[Path, ...]) -> dict[Path, list[Path] | None]:
    """Journey folders to check, each with the files to check (None: all of the folder)."""
    if not paths:
        return {_default_dir("LOYALOOP_JOURNEYS", "journeys"): None}
    folders: dict[Path, list[Path] | None] = {}
    files: dict[Path, list[Path]] = defaultdict(list)
    for path in paths:
        if path.is_dir():
            folders[path] = None
        else:
            files[path.parent].append(path)
    for folder, chosen in files.items():
        if folder not in folders:
            folders[folder] = chosen
    return folders


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--templates",
    "templates_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Templates folder (default: $LOYALOOP_TEMPLATES or ./templates).",
)
@click.option("--no-plugins", is_flag=True, help="Check against the built-in channels only.")
@click.option(
    "--no-catalogue",
    is_flag=True,
    help="Accept a folder without catalogue.yaml (event names and fields are then not checked).",
)
def validate(paths: tuple[Path, ...], templates_dir: Path | None, no_plugins: bool, no_catalogue: bool) -> None:
    """Check journeys, their templates, the catalogue and settings; print every problem.

    PATHS are journey files or folders (default: $LOYALOOP_JOURNEYS or ./journeys); the
    templates folder is $LOYALOOP_TEMPLATES or ./templates unless --templates says.
    A folder needs a catalogue.yaml (the events and profile fields journeys may use) unless
    --no-catalogue is given.  Exit status 0 when everything is valid, 1 otherwise.
    """
    templates = templates_dir or _default_dir("LOYALOOP_TEMPLATES", "templates")
    problems: list[Problem] = []
    warnings: list[Problem] = []
    count = 0
    for folder, files in _targets(paths).items():
        missing = [path for path in ([folder] if files is None else files) if not path.exists()]
        if missing:
            problems += [Problem(str(path), 1, 1, "no such file or folder", "check the path") for path in missing]
            continue
        settings, settings_problems = _settings(folder)
        problems += settings_problems
        if not no_catalogue and not (folder / CATALOGUE_FILE).is_file():
            problems.append(
                Problem(
                    str(folder / CATALOGUE_FILE),
                    1,
                    1,
                    "there is no catalogue.yaml, so event names and the fields templates use cannot be checked",
                    "add one listing your events and profile fields (see docs/journeys.md), or pass --no-catalogue",
                )
            )
        channels, filters, globals_ = (None, {}, {}) if no_plugins else _plugin_additions(settings)
        try:
            journeys = load_journeys(
                folder,
                templates,
                channels=channels,
                default_locale=settings.default_locale,
                files=files,
                filters=filters,
                globals=globals_,
                vouchers=settings.vouchers,
                endpoints=settings.endpoints,
            )
            count += len(journeys)
            warnings += _advice(folder, files, journeys, settings, templates, filters, globals_)
        except ValidationFailed as exc:
            problems += exc.problems
            count += len(files if files is not None else journey_files(folder))

    template_count, template_problems = check_templates_folder(
        CheckContext(templates_dir=templates, env=environment(templates, *_template_additions(no_plugins)))
    )
    problems += template_problems
    problems = sort_problems(problems)
    for warning in sort_problems(warnings):
        click.echo(f"warning: {warning}")
    for problem in problems:
        click.echo(str(problem))
    files_with = len({problem.path for problem in problems})
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        click.echo(f"{len(problems)} {noun} in {files_with} file{'s' if files_with != 1 else ''}", err=True)
        sys.exit(1)
    click.echo(f"{count} journey{'s' if count != 1 else ''} and {template_count} template files valid", err=True)


def _advice(
    folder: Path,
    files: list[Path] | None,
    journeys: dict[str, Journey],
    settings: Settings,
    templates: Path,
    filters: dict[str, Callable[..., Any]],
    globals_: dict[str, Any],
) -> list[Problem]:
    """The warnings of :mod:`orchestrator.language.advice` for the journeys of a folder that loaded."""
    catalogue = load_catalogue_for(folder)
    env = environment(templates, filters, globals_)
    found: list[Problem] = []
    for path in files if files is not None else journey_files(folder):
        doc = read_yaml_file(path)
        journey = journeys.get(str(doc.data.get("id"))) if isinstance(doc.data, dict) else None
        if journey is not None:
            found += journey_advice(
                journey,
                doc,
                caps=settings.caps,
                transactional_quiet_hours=settings.transactional_quiet_hours,
                catalogue=catalogue,
                templates_dir=templates,
                env=env,
            )
    return found


@click.command()
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="Write to a file instead.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of a journey file (editors use it to complete and check keys)."""
    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def _read_json(path: Path | None, what: str) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {str(path)!r}: {exc.strerror}", field=what) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"the {what} file {str(path)!r} is not valid JSON: {exc}", field=what) from None
    if not isinstance(value, dict):
        raise InputError(f"the {what} file must hold a JSON object, got {type(value).__name__}", field=what)
    return value


def _find_journey(journeys: dict[str, Journey], wanted: str) -> Journey:
    journey = journeys.get(wanted) or journeys.get(Path(wanted).stem)
    if journey is None:
        raise InputError(f"no journey {wanted!r}; journeys: {', '.join(sorted(journeys))}", field="journey")
    return journey


def _send_step(journey: Journey, step_id: str) -> SendStep:
    sends = [step.id for step in journey.steps if isinstance(step, SendStep)]
    try:
        step = journey.step(step_id)
    except KeyError:
        raise InputError(
            f"journey {journey.id!r} has no step {step_id!r}; its send steps: {', '.join(sends)}", field="step"
        ) from None
    if not isinstance(step, SendStep):
        raise InputError(f"step {step_id!r} sends nothing; its send steps: {', '.join(sends)}", field="step")
    return step


@click.command()
@click.argument("journey_name", metavar="JOURNEY")
@click.argument("step_id", metavar="[STEP]", required=False)
@click.option("--all-steps", is_flag=True, help="Walk the whole journey: every step, branch, wait and message.")
@click.option(
    "--profile",
    "profile_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Profile JSON file (default: a sample built from the examples in catalogue.yaml).",
)
@click.option("--event", "event_file", type=click.Path(path_type=Path), default=None, help="Trigger event properties.")
@click.option("--locale", default=None, help="Render in this locale (default: the profile's).")
@click.option("--channel", default=None, help="Render a fallback channel of the step instead of its first.")
@click.option("--journeys", "journeys_dir", type=click.Path(path_type=Path), default=None)
@click.option("--templates", "templates_dir", type=click.Path(path_type=Path), default=None)
@click.option("--now", "now_text", default=None, help="The moment to render at (ISO-8601; default: now).")
def render(
    journey_name: str,
    step_id: str | None,
    all_steps: bool,
    profile_file: Path | None,
    event_file: Path | None,
    locale: str | None,
    channel: str | None,
    journeys_dir: Path | None,
    templates_dir: Path | None,
    now_text: str | None,
) -> None:
    """Print the exact message a customer would get from STEP of JOURNEY, or with --all-steps every
    step the customer would take: the branch each condition takes, the waits, every message.

    Examples: loyaloop render winback miss_you_email --locale nl;
    loyaloop render winback --all-steps --profile anna.json
    """
    folder = journeys_dir or _default_dir("LOYALOOP_JOURNEYS", "journeys")
    templates = templates_dir or _default_dir("LOYALOOP_TEMPLATES", "templates")
    settings, settings_problems = _settings(folder)
    if settings_problems:
        raise ValidationFailed(settings_problems)
    # Only the asked journey's file when it is named after it: a problem in another journey must
    # not block this one's preview (validate reports it).
    own = [folder / f"{journey_name}{suffix}" for suffix in (".yaml", ".yml")]
    files = [path for path in own if path.is_file()] or None
    journeys = load_journeys(
        folder,
        templates,
        default_locale=settings.default_locale,
        files=files,
        vouchers=settings.vouchers,
        endpoints=settings.endpoints,
    )
    journey = _find_journey(journeys, journey_name)
    if all_steps == (step_id is not None):
        raise InputError("give either a STEP to render or --all-steps to walk the whole journey", field="step")
    step = None if step_id is None else _send_step(journey, step_id)
    if step is not None and channel is not None and channel not in step.channels:
        raise InputError(f"step {step.id!r} sends on {', '.join(step.channels)}, not {channel!r}", field="channel")
    catalogue = load_catalogue_for(folder)
    if profile_file is None:
        attributes = catalogue.example_attributes() if catalogue else {}
        profile = Profile(id="preview", locale=settings.default_locale, attributes=attributes)
    else:
        try:
            profile = Profile.model_validate(_read_json(profile_file, "profile"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = f"the profile file is not a valid profile: {where}: {first['msg']}"
            raise InputError(message, field="profile") from None
    event = _read_json(event_file, "event")
    if event_file is None and catalogue is not None and isinstance(journey.trigger, EventTrigger):
        event = catalogue.example_event(journey.trigger.event)
    try:
        now = datetime.fromisoformat(now_text) if now_text else datetime.now(UTC)
    except ValueError:
        raise InputError(f"--now {now_text!r} is not an ISO-8601 date and time", field="now") from None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if step is None:
        renderer = Renderer(templates, default_locale=settings.default_locale)
        click.echo(walk_text(journey, profile, event, now, settings, renderer, locale))
        return
    used_channel = channel or step.send
    chosen_locale = locale or profile.locale or settings.default_locale
    renderer = Renderer(templates, default_locale=settings.default_locale)
    content = render_step(
        renderer,
        journey,
        step,
        profile,
        event=event,
        now=now,
        vouchers=settings.vouchers,
        endpoints=settings.endpoints,
        channel=used_channel,
        locale=chosen_locale,
        public_url=settings.public_url,
    )
    header = f"# {journey.id} / {step.id}: {used_channel} template {step.template!r}, locale {content.locale}" + (
        f" (asked for {chosen_locale})" if content.locale != chosen_locale else ""
    )
    click.echo(header)
    if profile_file is None or (event_file is None and event):
        click.echo("note: sample data from catalogue.yaml (pass --profile / --event for a real customer)", err=True)
    click.echo(format_content(content))
