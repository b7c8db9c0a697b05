"""The ``loyaloop`` command.  Each sub-command lives in its own module and is imported only when
used, so ``loyaloop validate`` starts fast and never needs Redis or provider SDKs.

No traceback reaches a marketer: Loyaloop's own errors print as one clear message and exit 1.

The top layer: it may import every layer below (``http``, ``workers``, ``runtime``, …); nothing
imports it (checked by import-linter, see docs/architecture.md).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from typing import Any

import click

from orchestrator.errors import LoyaloopError

#: command name → "module:attribute" of a ``click.Command``.
COMMANDS: dict[str, str] = {
    "validate": "orchestrator.cli.authoring:validate",
    "schema": "orchestrator.cli.authoring:schema",
    "render": "orchestrator.cli.authoring:render",
    "demo": "orchestrator.cli.demo:demo",
    "track": "orchestrator.cli.intake:track",
    "identify": "orchestrator.cli.intake:identify",
    "import": "orchestrator.cli.intake:import_events",
    "worker": "orchestrator.cli.ops:worker",
    "scheduler": "orchestrator.cli.ops:scheduler",
    "status": "orchestrator.cli.ops:status",
    "unsubscribe": "orchestrator.cli.consent:unsubscribe",
    "serve": "orchestrator.cli.serve:serve",
    "doctor": "orchestrator.cli.doctor:doctor",
    "replay-events": "orchestrator.cli.events:replay_events",
    "vouchers": "orchestrator.cli.vouchers:vouchers",
    "send-test": "orchestrator.cli.send_test:send_test",
    "report": "orchestrator.cli.report:report",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """Click's lookup, with a did-you-mean for a misspelt command (``loyaloop valdiate``)."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            close = difflib.get_close_matches(name, sorted(COMMANDS), n=1, cutoff=0.6)
            if close:
                raise click.UsageError(f"No such command {name!r}; did you mean {close[0]!r}?", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="loyaloop")
def cli() -> None:
    """Loyaloop: customer journeys as code, run by Dramatiq workers on Redis."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point: every failure becomes one readable line and a non-zero exit, never a traceback.

    ``LOYALOOP_DEBUG=1`` lets unexpected errors through with their traceback, for developers.
    """
    import redis

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
        # prometheus_client switches to multi-process files when the variable merely exists, and an
        # empty one means "the current directory": treat it as unset, before any command (and so
        # any metric) is imported.
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        return cli.main(args=argv, prog_name="loyaloop", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except LoyaloopError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except redis.exceptions.ConnectionError as exc:
        click.echo(f"error: cannot reach Redis ({exc}); check REDIS_URL or unset it for the embedded default", err=True)
        sys.exit(1)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("LOYALOOP_DEBUG") == "1":
            raise
        click.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (a bug in Loyaloop; LOYALOOP_DEBUG=1 shows the details)",
            err=True,
        )
        sys.exit(2)
