"""Project settings: the fatigue policy in ``journeys/settings.yaml`` plus the environment.

Policy (caps, quiet hours, default zone and locale) is marketing's and lives beside the journeys;
connection details, secrets and the workers' tuning are ops' and come only from the environment,
never from a file that might be committed.  Every variable is read and checked here, once
(:data:`ENVIRONMENT`): a typo in ``LOYALOOP_HEARTBEAT_MS`` stops the process at start-up with a
:class:`ConfigurationError` naming it, instead of a bare ``ValueError`` wherever it happened to be
read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails

from orchestrator.errors import ConfigurationError, Problem, ValidationFailed
from orchestrator.language.endpoints import Endpoint
from orchestrator.language.journey import EVENT_NAME, CapRule, ChannelName, Duration, QuietWindow, ValuePath
from orchestrator.language.located import problems_from
from orchestrator.language.vouchers import VoucherPool
from orchestrator.language.yamlfile import YamlDocument, read_yaml_file

SETTINGS_FILE = "settings.yaml"

#: ``CapRule`` is defined with the journey model (journeys override caps) and re-exported here.
__all__ = [
    "ENVIRONMENT",
    "ENVIRONMENT_ONLY",
    "SETTINGS_FILE",
    "CapRule",
    "MeasureSettings",
    "Settings",
    "default_folder",
    "from_environment",
    "is_cluster_url",
    "load_settings",
    "shown_default",
    "without_password",
]

#: Dramatiq's scale for ``maintenance_chance`` (``dramatiq.brokers.redis.MAINTENANCE_SCALE``; this
#: module may not import Dramatiq): a chance per million broker commands.
MAINTENANCE_SCALE = 1_000_000

#: ``REDIS_URL`` schemes that say the state store is a Redis Cluster (redis-py itself knows no such
#: scheme: Loyaloop reads it and builds a ``RedisCluster``).  One variable says both where and what,
#: so the two can never disagree.
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SINGLE_SCHEMES = ("redis", "rediss", "unix")
BROKER_SCHEMES = ("redis", "rediss", "unix", "amqp", "amqps")
#: A namespace is part of every key and queue name: letters, digits, ``_`` and ``-`` only, so it
#: can never carry a hash tag (``{}``), a separator (``:``, ``.``) or a glob character into a key
#: pattern or a queue name.
NAMESPACE_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"


def is_cluster_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return bool(url) and urlsplit(str(url)).scheme.lower() in CLUSTER_SCHEMES


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``: URLs are shown in errors, secrets never."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _check_redis_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in (*SINGLE_SCHEMES, *CLUSTER_SCHEMES):
        raise ValueError("use redis://host:port/db for one Redis or redis+cluster://host:port for a Redis Cluster")
    if scheme not in CLUSTER_SCHEMES and "cluster" in parts.query.lower():
        raise ValueError("say a cluster with the scheme: redis+cluster://host:port (not ?cluster=…)")
    if scheme in CLUSTER_SCHEMES:
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("a Redis Cluster has database 0 only: drop the /<db> (use another LOYALOOP_NAMESPACE)")
        if parts.query:
            raise ValueError("a cluster URL takes no ?options; name one node, the others are found from it")
        if not parts.hostname:
            raise ValueError("name a node of the cluster: redis+cluster://host:port")
    return url


def _check_broker_url(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme in CLUSTER_SCHEMES:
        raise ValueError(
            "the queue cannot live on a Redis Cluster (Dramatiq's Redis broker runs multi-key scripts); "
            "use a single Redis (redis://host:port/db) or RabbitMQ (amqp://user:password@host:port/vhost)"
        )
    if scheme not in BROKER_SCHEMES:
        raise ValueError("use redis://host:port/db (a single Redis) or amqp://user:password@host:port/vhost (RabbitMQ)")
    return url


def _days(count: int) -> Any:
    return Field(default_factory=lambda: timedelta(days=count))


class MeasureSettings(BaseModel):
    """What proof of effect counts besides the journeys' goals (docs/measuring.md): the loyalty
    KPIs over ``kpi_window`` after entry, from events and property paths the shop names."""

    model_config = ConfigDict(extra="forbid")

    #: Window after entry of a goal that gives no ``within``.
    goal_window: Duration = _days(30)
    #: Window after entry of the loyalty KPIs (repeat purchase, orders, revenue, redemption, NPS).
    kpi_window: Duration = _days(30)
    order_event: Annotated[str, Field(pattern=EVENT_NAME)] = "order.placed"
    order_value: ValuePath = "properties.total"
    redemption_event: Annotated[str, Field(pattern=EVENT_NAME)] = "reward.redeemed"
    nps_event: Annotated[str, Field(pattern=EVENT_NAME)] = "nps.answered"
    nps_score: ValuePath = "properties.score"


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
    #: An event older than this when a worker handles it starts no journey (counted as
    #: ``too_old`` per journey); a journey's own ``max_event_age`` overrides it.
    max_event_age: Duration = Field(default_factory=lambda: __import__("datetime").timedelta(hours=24))
    #: How long after a friend arrives with a referral code their first order still credits the
    #: referrer (``referral.converted``, see orchestrator/runtime/referrals.py).
    referral_window: Duration = Field(default_factory=lambda: __import__("datetime").timedelta(days=30))
    #: Voucher pools by name (``send`` steps name one with ``voucher:``; see docs/journeys.md).
    vouchers: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)], VoucherPool] = Field(
        default_factory=dict
    )
    #: The shop's endpoints ``action`` steps call, by name (URLs and secrets from the environment).
    endpoints: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)], Endpoint] = Field(
        default_factory=dict
    )
    #: Percent of all customers (by a stable hash of their id) whom no marketing journey ever
    #: messages: the programme-wide control group.  Transactional journeys still message them.
    global_holdout: Annotated[float, Field(ge=0, le=100)] = 0.0
    measure: MeasureSettings = Field(default_factory=MeasureSettings)
    #: Base URL of the public HTTP app, used in unsubscribe links.
    public_url: str = "http://127.0.0.1:8000"

    # From the environment only (see ENVIRONMENT for the variable of each):
    #: The state store: ``redis://…`` (one Redis) or ``redis+cluster://host:port`` (a Redis Cluster).
    redis_url: str | None = Field(None, description="redis://host:port/db or redis+cluster://host:port")
    #: The queue: ``redis://…`` (a single Redis) or ``amqp://…`` (RabbitMQ); ``REDIS_URL`` when unset.
    broker_url: str | None = Field(None, description="redis://host:port/db or amqp://user:password@host:port/vhost")
    #: Prefix of every key, of Dramatiq's namespace and of the queue names.
    namespace: str = Field(
        "lp", pattern=NAMESPACE_PATTERN, description="1 to 32 letters, digits, '_' or '-' (no ':', '{', '}', '*')"
    )
    #: Event and timer shard lists (see docs/scaling.md); unset: 16 on one Redis, 64 on a cluster.
    event_shards: int | None = Field(None, ge=1, le=4096, description="a whole number of shards from 1 to 4096")
    timer_shards: int | None = Field(None, ge=1, le=4096, description="a whole number of shards from 1 to 4096")
    #: Signs unsubscribe links; required wherever state outlives the process (see docs/policy.md).
    secret_key: SecretStr | None = None
    outbox_path: Path = Path("outbox.jsonl")
    journeys_dir: Path = Path("journeys")
    templates_dir: Path = Path("templates")
    #: Milliseconds without a heartbeat after which Dramatiq counts a worker as dead (its own
    #: default is 60 s; a redelivered message is harmless, so a shorter wait costs nothing).
    heartbeat_ms: int = Field(15_000, gt=0, description="a whole number of milliseconds above 0")
    #: Per million broker commands, how often a worker's broker looks for dead workers.
    maintenance_chance: int = Field(
        1000, ge=0, le=MAINTENANCE_SCALE, description=f"a whole number from 0 to {MAINTENANCE_SCALE} (per million)"
    )
    #: Dramatiq's Prometheus middleware in every worker process.
    metrics: bool = Field(False, description="1 (on) or 0 (off)")
    #: Seconds a claimed timer may be in flight before the reaper re-drives it.
    timer_lease: float = Field(30.0, gt=0, allow_inf_nan=False, description="a number of seconds above 0")
    #: Seconds a run may sit in ``sending`` before its send is re-driven.
    send_lease: float = Field(60.0, gt=0, allow_inf_nan=False, description="a number of seconds above 0")
    #: Event drains one worker process runs at once (see orchestrator/runtime/drain_slots.py).
    batch_slots: int = Field(2, ge=1, description="a whole number of drains, at least 1")
    #: Replicas that must confirm an intake write (``WAIT``) before a caller is told it is accepted;
    #: 0 is off (docs/reliability.md §6: where the replication window is worth closing).
    intake_replicas: int = Field(0, ge=0, le=100, description="a whole number of replicas from 0 (off) to 100")
    #: Milliseconds an intake write waits for those replicas before the caller is told "not confirmed".
    intake_replica_timeout_ms: int = Field(
        250, ge=1, le=60_000, description="a whole number of milliseconds from 1 to 60000"
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_redis_url(value)

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_broker_url(value)

    @property
    def redis_cluster(self) -> bool:
        """Whether the state store is a Redis Cluster (``REDIS_URL=redis+cluster://…``)."""
        return is_cluster_url(self.redis_url)

    @property
    def queue_url(self) -> str | None:
        """Where the Dramatiq queue lives: ``LOYALOOP_BROKER_URL``, else ``REDIS_URL`` when that is
        one Redis (a cluster without a broker URL is refused by :func:`load_settings`)."""
        if self.broker_url:
            return self.broker_url
        return None if self.redis_cluster else self.redis_url


#: Environment variable → the :class:`Settings` field it sets.  An empty variable counts as unset.
ENVIRONMENT: dict[str, str] = {
    "REDIS_URL": "redis_url",
    "LOYALOOP_BROKER_URL": "broker_url",
    "LOYALOOP_NAMESPACE": "namespace",
    "LOYALOOP_EVENT_SHARDS": "event_shards",
    "LOYALOOP_TIMER_SHARDS": "timer_shards",
    "LOYALOOP_SECRET_KEY": "secret_key",
    "LOYALOOP_OUTBOX": "outbox_path",
    "LOYALOOP_PUBLIC_URL": "public_url",
    "LOYALOOP_HEARTBEAT_MS": "heartbeat_ms",
    "LOYALOOP_MAINTENANCE_CHANCE": "maintenance_chance",
    "LOYALOOP_METRICS": "metrics",
    "LOYALOOP_TIMER_LEASE": "timer_lease",
    "LOYALOOP_SEND_LEASE": "send_lease",
    "LOYALOOP_BATCH_SLOTS": "batch_slots",
    "LOYALOOP_INTAKE_REPLICAS": "intake_replicas",
    "LOYALOOP_INTAKE_REPLICA_TIMEOUT_MS": "intake_replica_timeout_ms",
}
#: Fields ``settings.yaml`` may not set: ops' (connections, secrets, tuning), never committed with
#: the journeys.  ``public_url`` may come from either.
ENVIRONMENT_ONLY: frozenset[str] = frozenset(ENVIRONMENT.values()) - {"public_url"}


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

    Environment: every variable of :data:`ENVIRONMENT`, plus ``LOYALOOP_JOURNEYS`` and
    ``LOYALOOP_TEMPLATES``.  A bad variable raises :class:`ConfigurationError` naming it; a mistake
    in the file raises :class:`ValidationFailed` located at its line, never a bare pydantic error.
    """

    environ = os.environ if env is None else env
    explicit = journeys_dir or environ.get("LOYALOOP_JOURNEYS")
    folder = Path(explicit) if explicit else default_folder("journeys")
    templates = environ.get("LOYALOOP_TEMPLATES")
    if not templates:
        beside = folder.parent / "templates"
        templates = str(beside if explicit and beside.is_dir() else default_folder("templates"))
    extra: dict[str, Any] = {"journeys_dir": folder, "templates_dir": Path(templates), **from_environment(environ)}
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return Settings.model_validate(extra)
    doc = read_yaml_file(path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ValidationFailed([doc.problem((), "expected a mapping of settings at the top of the file")])
    if refused := environment_only_problems(doc, data):
        raise ValidationFailed(refused)
    try:
        return Settings.model_validate({**data, **extra})
    except ValidationError as exc:
        raise ValidationFailed(problems_from(exc, doc, Settings)) from None


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields the environment sets, checked on their own first, so a bad variable is reported
    as the variable (name, value, what is expected) and not as a line of ``settings.yaml``."""
    overlay = {field: environ[name] for name, field in ENVIRONMENT.items() if environ.get(name)}
    try:
        checked = Settings.model_validate(overlay)
    except ValidationError as exc:
        raise ConfigurationError("; ".join(_explain(error, environ) for error in exc.errors())) from None
    if checked.redis_cluster and not checked.broker_url:
        raise ConfigurationError(
            f"REDIS_URL={without_password(environ['REDIS_URL'])!r} is a Redis Cluster, "
            "where Dramatiq's queue cannot live; "
            "set LOYALOOP_BROKER_URL=redis://host:port/0 (a single Redis for the queue) "
            "or amqp://user:password@host:5672/%2F (RabbitMQ)"
        )
    return {field: getattr(checked, field) for field in overlay}


def _explain(error: ErrorDetails, environ: Mapping[str, str]) -> str:
    field = str(error["loc"][0])
    name = next(name for name, known in ENVIRONMENT.items() if known == field)
    info = Settings.model_fields[field]
    shown = "<hidden>" if field == "secret_key" else repr(without_password(environ[name]))
    expected = info.description or str(info.annotation)
    return (
        f"{name}={shown} is not {expected} ({error['msg']}); "
        f"fix it, or unset {name} for the default {shown_default(field)}"
    )


def shown_default(field: str) -> str:
    """A field's default as the docs' tables write it (``—`` for none, ``0``/``1`` for a switch)."""
    default = Settings.model_fields[field].get_default(call_default_factory=True)
    if default is None:
        return "—"
    if isinstance(default, bool):
        return str(int(default))
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def environment_only_problems(doc: YamlDocument, data: dict[str, Any]) -> list[Problem]:
    """A ``settings.yaml`` key that only the environment may set, as a located problem."""
    inverse = {field: name for name, field in ENVIRONMENT.items()}
    return [
        doc.problem(
            (key,),
            f"{key!r} comes from the environment only",
            f"remove it; set {inverse[key]}" if key in inverse else "remove it",
            at_key=True,
        )
        for key in data
        if key in ENVIRONMENT_ONLY
    ]
