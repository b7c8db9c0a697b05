"""Project settings: the fatigue policy in ``journeys/settings.yaml`` plus the environment.

Policy (caps, quiet hours, default zone and locale) is marketing's and lives beside the journeys;
connection details and secrets are ops' and come only from the environment, never from a file
that might be committed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from orchestrator.errors import ValidationFailed
from orchestrator.language.journey import CapRule, ChannelName, Duration, QuietWindow
from orchestrator.language.located import problems_from
from orchestrator.language.yamlfile import read_yaml_file

SETTINGS_FILE = "settings.yaml"

#: ``CapRule`` is defined with the journey model (journeys override caps) and re-exported here.
__all__ = ["SETTINGS_FILE", "CapRule", "Settings", "default_folder", "load_settings"]


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


#: The project folder holding the shipped ``journeys/`` and ``templates/`` (a checkout or editable install).
PROJECT_DIR = Path(__file__).resolve().parent.parent


def default_folder(name: str) -> Path:
    """``./name`` when it exists, else the shipped one, so ``loyaloop demo`` works from any folder."""
    local = Path(name)
    if local.is_dir() or not (PROJECT_DIR / name).is_dir():
        return local
    return PROJECT_DIR / name


def load_settings(journeys_dir: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``settings.yaml`` from the journeys folder (if present) and overlay the environment.

    Environment: ``REDIS_URL``, ``LOYALOOP_SECRET_KEY``, ``LOYALOOP_OUTBOX``,
    ``LOYALOOP_JOURNEYS``, ``LOYALOOP_TEMPLATES``, ``LOYALOOP_PUBLIC_URL``.  A mistake in the file
    raises :class:`ValidationFailed` located at its line, never a bare pydantic error.
    """

    environ = os.environ if env is None else env
    explicit = journeys_dir or environ.get("LOYALOOP_JOURNEYS")
    folder = Path(explicit) if explicit else default_folder("journeys")
    templates = environ.get("LOYALOOP_TEMPLATES")
    if not templates:
        beside = folder.parent / "templates"
        templates = str(beside if explicit and beside.is_dir() else default_folder("templates"))
    overlay = {
        "redis_url": environ.get("REDIS_URL"),
        "secret_key": environ.get("LOYALOOP_SECRET_KEY"),
        "outbox_path": environ.get("LOYALOOP_OUTBOX"),
        "public_url": environ.get("LOYALOOP_PUBLIC_URL"),
    }
    extra: dict[str, Any] = {"journeys_dir": folder, "templates_dir": Path(templates)}
    extra.update({key: value for key, value in overlay.items() if value})
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return Settings.model_validate(extra)
    doc = read_yaml_file(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ValidationFailed([doc.problem((), "expected a mapping of settings at the top of the file")])
    try:
        return Settings.model_validate({**data, **extra})
    except ValidationError as exc:
        raise ValidationFailed(problems_from(exc, doc, Settings)) from None
