"""``loyaloop track``, ``loyaloop identify`` and ``loyaloop import``: feed events and profiles in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from orchestrator.errors import InputError
from orchestrator.workers.client import connect


def _pairs(values: tuple[str, ...], what: str) -> dict[str, Any]:
    """``k=v`` pairs; a value that parses as JSON (numbers, true, lists) keeps its type."""
    result: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"{what} {item!r} is not key=value, e.g. total=42.5", field=what)
        try:
            result[key] = json.loads(raw)
        except json.JSONDecodeError:
            result[key] = raw
    return result


@click.command()
@click.argument("customer")
@click.argument("event")
@click.option("--prop", "props", multiple=True, help="A property as key=value (repeatable).")
@click.option("--json", "json_text", help="All properties as one JSON object.")
@click.option("--id", "event_id", help="Event id (reuse it when retrying so the event counts once).")
def track(customer: str, event: str, props: tuple[str, ...], json_text: str | None, event_id: str | None) -> None:
    """Send EVENT for CUSTOMER to the workers."""

    properties = _pairs(props, "prop")
    if json_text:
        try:
            loaded = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise InputError(f"--json is not valid JSON: {exc}", field="properties") from None
        if not isinstance(loaded, dict):
            raise InputError("--json must be an object", field="properties")
        properties.update(loaded)
    ident = connect().track(customer, event, properties, event_id=event_id)
    click.echo(f"queued {event} for {customer} (event id {ident})")


@click.command()
@click.argument("customer")
@click.argument("attributes", nargs=-1)
def identify(customer: str, attributes: tuple[str, ...]) -> None:
    """Set attributes (key=value …) on CUSTOMER's profile."""

    connect().identify(customer, _pairs(attributes, "attribute"))
    click.echo(f"updated {customer}")


@click.command(name="import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_events(path: Path, quiet: bool) -> None:
    """Import a JSONL file of track/identify records; bad lines are listed and counted."""

    report = connect().import_file(path, progress=not quiet)
    click.echo(f"imported {report.imported} records, refused {len(report.refused)}")
    for line, reason in report.refused[:50]:
        click.echo(f"  line {line}: {reason}", err=True)
    if len(report.refused) > 50:
        click.echo(f"  … and {len(report.refused) - 50} more", err=True)
