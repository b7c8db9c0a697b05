"""Project settings: the fatigue policy in ``journeys/settings.yaml`` plus the environment.

Policy (caps, quiet hours, default zone and locale) is marketing's and lives beside the journeys;
connection details and secrets are ops' and come only from the environment, never from a file
that might be committed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from orchestrator.journey import ChannelName, Duration, QuietWindow

SETTINGS_FILE = "settings.yaml"


class CapRule(BaseModel):
    """At most ``max`` messages on ``channel`` (or ``any``) in a rolling ``window``.

    ``category`` or ``tag`` narrow the rule to marketing/transactional sends or journeys carrying
    that tag.  All rules hold together; the strictest one decides.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: ChannelName | Literal["any"] = "any"
    window: Duration
    max: Annotated[int, Field(ge=0)]
    category: Literal["marketing", "transactional"] | None = None
    tag: str | None = None


class Settings(BaseModel):
    """Everything configurable.  Built by :func:`load_settings`; tests build it directly."""

    model_config = ConfigDict(extra="forbid")

    default_timezone: str = "UTC"
    default_locale: str = "en"
    locales: list[str] = Field(default_factory=lambda: ["en", "nl"])
    caps: list[CapRule] = Field(default_factory=list)
    transactional_counts_toward_caps: bool = True
    #: Transactional sends ignore quiet hours unless this is true (a receipt is expected at once).
    transactional_quiet_hours: bool = False
    #: How long the frequency-cap send log keeps a send: at least the longest cap window anywhere,
    #: journey overrides included, so one journey's short rules never trim another's history.
    send_log_retention: Duration = Field(default_factory=lambda: __import__("datetime").timedelta(days=30))
    quiet_hours: dict[ChannelName, QuietWindow | None] = Field(default_factory=dict)
    defer_max: Duration = Field(default_factory=lambda: __import__("datetime").timedelta(days=3))
    #: Sends per second per channel, shared by every worker (protects against provider 429 storms).
    rate_limits: dict[ChannelName, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    #: Base URL of the public HTTP app, used in unsubscribe links.
    public_url: str = "http://127.0.0.1:8000"

    # From the environment only:
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    outbox_path: Path = Path("outbox.jsonl")
    journeys_dir: Path = Path("journeys")
    templates_dir: Path = Path("templates")


def load_settings(journeys_dir: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read ``settings.yaml`` from the journeys folder (if present) and overlay the environment.

    Environment: ``REDIS_URL``, ``LOYALOOP_SECRET_KEY``, ``LOYALOOP_OUTBOX``,
    ``LOYALOOP_JOURNEYS``, ``LOYALOOP_TEMPLATES``, ``LOYALOOP_PUBLIC_URL``.
    """
    from orchestrator.yamlfile import load_settings_file

    environ = os.environ if env is None else env
    folder = Path(journeys_dir or environ.get("LOYALOOP_JOURNEYS", "journeys"))
    data = load_settings_file(folder / SETTINGS_FILE) if (folder / SETTINGS_FILE).exists() else {}
    data["journeys_dir"] = folder
    overlay = {
        "redis_url": environ.get("REDIS_URL"),
        "secret_key": environ.get("LOYALOOP_SECRET_KEY"),
        "outbox_path": environ.get("LOYALOOP_OUTBOX"),
        "templates_dir": environ.get("LOYALOOP_TEMPLATES"),
        "public_url": environ.get("LOYALOOP_PUBLIC_URL"),
    }
    data.update({key: value for key, value in overlay.items() if value})
    return Settings.model_validate(data)
