"""``loyaloop track``, ``loyaloop identify`` and ``loyaloop import``: feed events and profiles in."""

from __future__ import annotations

import json
import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from orchestrator.errors import InputError
from orchestrator.workers.client import connect

#: Shown in both commands' help: one syntax for properties and attributes.
VALUES_HELP = (
    "Values are typed alike in track and identify: numbers (42, 42.5), booleans (true, false), null, "
    'JSON lists and objects ([1,2], {"email": true}) keep their type; ISO dates (2026-03-01) and '
    "times (2026-03-01T09:30:00+01:00) are checked and kept as ISO text; anything else is text "
    "(quote it to keep 007 or true as text: '\"true\"')."
)


def typed_value(raw: str, key: str) -> Any:
    """One ``key=value`` value, typed by the rules of :data:`VALUES_HELP`."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    if _ISO_DATE.match(raw):
        try:
            return (date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw)).isoformat()
        except ValueError as exc:
            raise InputError(f"{key}={raw!r} looks like a date but is not one ({exc})", field=key) from None
    return raw


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def key_values(items: tuple[str, ...], json_text: str | None = None) -> dict[str, Any]:
    """``key=value`` items, then a ``--json`` object over them; the same for track and identify."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(
                f"{item!r} is not key=value, e.g. total=42.5 or consent='{{\"email\": true}}'", field="key=value"
            )
        result[key] = typed_value(raw, key)
    if json_text:
        try:
            loaded = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--json is not valid JSON: {exc}", field="--json") from None
        if not isinstance(loaded, dict):
            raise InputError(f"--json must be an object, got {type(loaded).__name__}", field="--json")
        result.update(loaded)
    return result


@click.command(epilog=VALUES_HELP)
@click.argument("customer")
@click.argument("event")
@click.argument("properties", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--prop", "props", multiple=True, help="A property as key=value (repeatable; same as KEY=VALUE).")
@click.option("--json", "json_text", help="All properties as one JSON object (applied last).")
@click.option("--id", "event_id", help="Event id (reuse it when retrying so the event counts once).")
def track(
    customer: str,
    event: str,
    properties: tuple[str, ...],
    props: tuple[str, ...],
    json_text: str | None,
    event_id: str | None,
) -> None:
    """Send EVENT for CUSTOMER to the workers, with its properties as KEY=VALUE.

    \b
    Example:
      loyaloop track anna cart.abandoned total=42.5 items=3 gift=false placed_on=2026-03-01
    """

    values = key_values((*properties, *props), json_text)
    ident = connect().track(customer, event, values, event_id=event_id)
    click.echo(f"queued {event} for {customer} (event id {ident})")


@click.command(epilog=VALUES_HELP)
@click.argument("customer")
@click.argument("attributes", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--prop", "props", multiple=True, help="An attribute as key=value (repeatable; same as KEY=VALUE).")
@click.option("--json", "json_text", help="All attributes as one JSON object (applied last).")
def identify(customer: str, attributes: tuple[str, ...], props: tuple[str, ...], json_text: str | None) -> None:
    """Set attributes (KEY=VALUE …) on CUSTOMER's profile.

    Contact points and settings are attributes too: email, phone (E.164), push_token, timezone
    (IANA), locale.  Consent is one attribute holding an object of channel → true/false
    (consent='{"email": true, "sms": false}'); a dotted consent.email=true is not a form it knows.

    \b
    Example:
      loyaloop identify anna email=anna@example.com first_name=Anna points=120 \\
        birthday=1990-05-17 timezone=Europe/Amsterdam consent='{"email": true}'
    """

    connect().identify(customer, key_values((*attributes, *props), json_text))
    click.echo(f"updated {customer}")


@click.command(name="import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_events(path: Path, quiet: bool) -> None:
    """Import a JSONL file of track/identify records; bad lines are listed and counted.

    Good lines are imported even when others are refused; the exit status is 1 when any line was
    refused, so a script notices."""

    report = connect().import_file(path, progress=not quiet)
    click.echo(f"imported {report.imported} records, refused {len(report.refused)}")
    for line, reason in report.refused[:50]:
        click.echo(f"  line {line}: {reason}", err=True)
    if len(report.refused) > 50:
        click.echo(f"  … and {len(report.refused) - 50} more", err=True)
    if report.refused:
        sys.exit(1)  # the good lines are in; a script must still see that some were not
