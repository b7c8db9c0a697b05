"""The start-up check every long-running command runs before it takes work (``worker``,
``scheduler``, ``serve``): one line per problem, each naming its fix, and exit status 1."""

from __future__ import annotations

import sys

import click

from orchestrator.runtime.readiness import Readiness, check_startup
from orchestrator.settings import Settings


def require_ready(
    settings: Settings,
    *,
    command: str,
    need_secret: bool = True,
    need_channels: bool = True,
    need_journeys: bool = True,
    need_endpoints: bool = True,
) -> Readiness:
    """Run :func:`~orchestrator.runtime.readiness.check_startup`; print warnings, and on any problem
    print them all (``error: …``, one a line) and exit 1.  A clean start names the journeys served."""
    found = check_startup(
        settings,
        need_secret=need_secret,
        need_channels=need_channels,
        need_journeys=need_journeys,
        need_endpoints=need_endpoints,
    )
    for warning in found.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not found.ok:
        for problem in found.problems:
            click.echo(f"error: {problem}", err=True)
        click.echo(f"loyaloop {command}: not started ({len(found.problems)} problem(s) above)", err=True)
        sys.exit(1)
    click.echo(f"loyaloop {command}: journeys {found.loaded()}", err=True)
    return found
