"""``loyaloop unsubscribe TOKEN``: withdraw consent from a signed link, for support staff and scripts.

Needs ``LOYALOOP_SECRET_KEY`` (the same secret that signed the link) and ``REDIS_URL``.  A
tampered or malformed token is refused with one line and exit code 1, like every Loyaloop error.
"""

from __future__ import annotations

import click

from orchestrator.errors import ConfigurationError
from orchestrator.gate.unsubscribe import secret_bytes
from orchestrator.gate.unsubscribe import unsubscribe as withdraw
from orchestrator.settings import load_settings
from orchestrator.store.connect import open_redis


@click.command()
@click.argument("token")
def unsubscribe(token: str) -> None:
    """Withdraw the consent that TOKEN (from an unsubscribe link) names."""
    settings = load_settings()
    secret = secret_bytes(settings)
    if not settings.redis_url:
        raise ConfigurationError(
            "REDIS_URL is not set; export REDIS_URL=redis://host:6379/0 to reach the worker's Redis"
        )
    client = open_redis(settings, decode_responses=False)
    try:
        claim = withdraw(client, secret, token)
    finally:
        client.close()
    journey = f" (link from journey {claim.journey_id})" if claim.journey_id else ""
    click.echo(f"unsubscribed customer {claim.customer_id} from {claim.channel}{journey}")
