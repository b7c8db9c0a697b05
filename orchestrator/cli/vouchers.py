"""``loyaloop vouchers load POOL FILE`` and ``loyaloop vouchers stock``: single-use codes for rewards.

A pool is declared in ``settings.yaml`` (``vouchers: {birthday: {kind: pool, low_stock: 200}}``);
its codes come from the shop's own system as a file, one per line (or a CSV with a ``code``
column).  A file with any bad line loads nothing, so a half-loaded file never has to be untangled.
"""

from __future__ import annotations

from pathlib import Path

import click
import redis

from orchestrator.errors import ConfigurationError, InputError, ValidationFailed
from orchestrator.language.located import did_you_mean
from orchestrator.language.vouchers import read_codes
from orchestrator.settings import Settings, load_settings
from orchestrator.store.vouchers import Vouchers


def _client(settings: Settings) -> redis.Redis:
    if not settings.redis_url:
        raise ConfigurationError("REDIS_URL is not set; export REDIS_URL=redis://host:6379/0")
    return redis.Redis.from_url(settings.redis_url, decode_responses=True)


def _pool(settings: Settings, name: str) -> None:
    spec = settings.vouchers.get(name)
    if spec is None:
        hint = did_you_mean(name, settings.vouchers) or "declare it in settings.yaml under 'vouchers:'"
        raise InputError(f"unknown voucher pool {name!r}; {hint}", field="pool")
    if spec.kind != "pool":
        raise InputError(f"pool {name!r} generates its codes (kind: generated); there is nothing to load", field="pool")


def stock_lines(settings: Settings, client: redis.Redis) -> list[str]:
    """One line per loaded pool with its free and given codes, flagged when below ``low_stock``."""
    store = Vouchers(client)
    lines = []
    for name, spec in sorted(settings.vouchers.items()):
        if spec.kind != "pool":
            lines.append(f"{name}: generated codes")
            continue
        stock = store.stock(name)
        low = stock.free < spec.low_stock
        flag = f"  LOW: fewer than {spec.low_stock} left, load more codes" if low else ""
        lines.append(f"{name}: {stock.free} free, {stock.given} handed out{flag}")
    return lines


@click.group()
def vouchers() -> None:
    """Voucher pools: load single-use codes, see what is left."""


@vouchers.command()
@click.argument("pool")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def load(pool: str, path: Path) -> None:
    """Load codes from PATH into POOL (codes loaded before are skipped).

    Example: loyaloop vouchers load birthday codes.csv
    """
    settings = load_settings()
    _pool(settings, pool)
    try:
        codes = read_codes(path)
    except ValidationFailed as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1) from None
    added = Vouchers(_client(settings)).load(pool, codes)
    skipped = len(codes) - added
    click.echo(
        f"loaded {added} code(s) into {pool}" + (f"; {skipped} were loaded before and skipped" if skipped else "")
    )


@vouchers.command()
def stock() -> None:
    """Free and handed-out codes per pool, with a warning for pools running low."""
    settings = load_settings()
    lines = stock_lines(settings, _client(settings))
    click.echo("\n".join(lines) if lines else "no voucher pools declared in settings.yaml")
