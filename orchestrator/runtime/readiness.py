"""Start-up checks: everything a long-running process will need, checked before it takes work.

``loyaloop worker`` (and every ``dramatiq orchestrator.worker`` process), ``loyaloop scheduler``,
``loyaloop serve`` and ``loyaloop doctor`` run :func:`check_startup`.  It loads and fully checks the
journeys and templates (with the plugins' channels, filters and globals), configures every plugin
one at a time (so two broken channels are two lines, not the first of them), and looks at the
settings the loaded journeys make necessary:

- ``LOYALOOP_SECRET_KEY`` when a marketing journey sends (its messages carry signed unsubscribe
  links; e-mail also carries them as ``List-Unsubscribe`` headers);
- ``LOYALOOP_PUBLIC_URL`` when those links are built for a deployment whose Redis is on another
  machine (the default points at this machine's loopback, which no customer can reach; with Redis on
  loopback too it is a trial run, and only warned about);
- each channel's own variables (SendGrid's sender, Twilio's sender or messaging service, FCM's
  service account), as its plugin's ``loyaloop_configure`` hook checks them;
- every endpoint an ``action`` step calls: declared, of a kind a plugin provides, and configured
  (its URL and signing secret in the environment), one line per endpoint naming the journey, the
  step and the variable to set.  A worker or scheduler refuses to start on it rather than record
  failed calls later (the scheduler fires the timers that lead to those calls).

The result is a list of one-line problems, each naming the fix, plus warnings that do not stop a
start (a channel writing to the outbox file on a production Redis).  Nothing here raises for bad
configuration: callers decide how to stop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pluggy

from orchestrator import plugins
from orchestrator.errors import ConfigurationError, ValidationFailed
from orchestrator.gate.unsubscribe import SECRET_HINT, secret_bytes
from orchestrator.language.journey import Journey, SendStep
from orchestrator.language.loader import load_journeys
from orchestrator.message import Channel
from orchestrator.runtime.actions import endpoint_problems
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

#: Hosts a public URL must not point at when customers are to click it.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
REDIS_HINT = (
    "REDIS_URL is not set, so there is no queue to work on; export REDIS_URL=redis://host:6379/0 "
    "(to try Loyaloop without a Redis server, run `loyaloop demo`)"
)


@dataclass
class Readiness:
    """What :func:`check_startup` found: the checked journeys, the channels, problems and warnings."""

    journeys: dict[str, Journey] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def loaded(self) -> str:
        """The journeys as ``id@version`` in id order, for the start-up log line."""
        return ", ".join(f"{j.id}@{j.version}" for j in sorted(self.journeys.values(), key=lambda j: j.id)) or "none"


def marketing_senders(journeys: dict[str, Journey]) -> list[str]:
    """Ids of marketing journeys with at least one send step (their messages carry signed links)."""
    return sorted(j.id for j in journeys.values() if j.category == "marketing" and any(_sends(j)))


def _sends(journey: Journey) -> list[SendStep]:
    return [step for step in journey.steps if isinstance(step, SendStep)]


def check_startup(
    settings: Settings,
    *,
    pm: pluggy.PluginManager | None = None,
    need_redis: bool = True,
    need_secret: bool = True,
    need_channels: bool = True,
    need_journeys: bool = True,
    need_endpoints: bool = True,
) -> Readiness:
    """Every problem that would stop this process from doing its work, before it takes any.

    ``need_redis``: the command works on a shared Redis (every long-running one does).
    ``need_secret``: the process signs or checks unsubscribe links (workers and ``serve``).
    ``need_channels``: the process sends (workers); elsewhere a channel's configuration problem is
    only a warning (the scheduler's machine need not hold the providers' secrets).
    ``need_journeys``: the process runs journeys; elsewhere (``serve``) a missing journeys folder is
    a warning and the checks that depend on the journeys are skipped.
    ``need_endpoints``: the process leads to action calls (workers make them, schedulers fire the
    timers before them); elsewhere (``serve``) an endpoint that cannot be called is only a warning.
    """
    found = Readiness()
    if need_redis and not settings.redis_url:
        found.problems.append(REDIS_HINT)
    try:
        manager = pm if pm is not None else plugins.get_plugin_manager()
    except ConfigurationError as exc:
        found.problems.append(str(exc))
        return found
    channel_problems: list[str] = []
    if _configure_each(manager, settings, channel_problems):
        try:
            found.channels = plugins.build_channels(settings, manager)
        except ConfigurationError as exc:
            channel_problems.append(str(exc))
    (found.problems if need_channels else found.warnings).extend(channel_problems)
    if not settings.journeys_dir.is_dir():
        missing = (
            f"the journeys folder {str(settings.journeys_dir)!r} does not exist; "
            "set LOYALOOP_JOURNEYS to the folder holding the journey files"
        )
        (found.problems if need_journeys else found.warnings).append(missing)
        return found
    try:
        found.journeys = load_journeys(
            settings.journeys_dir,
            settings.templates_dir,
            channels=set(found.channels) or None,
            default_locale=settings.default_locale,
            filters=plugins.template_filters(manager),
            globals=plugins.template_globals(manager),
            vouchers=settings.vouchers,
            endpoints=settings.endpoints,
        )
    except ValidationFailed as exc:
        found.problems.extend(str(problem) for problem in exc.problems)
    except (ConfigurationError, OSError) as exc:
        found.problems.append(f"journeys in {settings.journeys_dir} cannot be loaded: {exc}")
    if found.journeys:
        try:
            unreachable = endpoint_problems(found.journeys, settings, plugins.build_action_kinds(settings, manager))
        except ConfigurationError as exc:  # two plugins registering one kind
            unreachable = [str(exc)]
        (found.problems if need_endpoints else found.warnings).extend(unreachable)
    senders = marketing_senders(found.journeys)
    if senders and need_secret:
        try:
            secret_bytes(settings)
        except ConfigurationError as exc:
            found.problems.append(f"{exc} (needed by marketing journeys {', '.join(senders)})")
    if senders and settings.redis_url and _is_loopback(settings.public_url):
        line = (
            f"LOYALOOP_PUBLIC_URL is {settings.public_url!r}, which customers cannot reach, yet marketing "
            f"journeys ({', '.join(senders)}) put unsubscribe links in their messages; "
            "export LOYALOOP_PUBLIC_URL=https://<where loyaloop serve is reachable>"
        )
        # Redis on another machine means a real deployment; all on loopback is a trial or a test.
        (found.warnings if _is_loopback(settings.redis_url) else found.problems).append(line)
    if settings.redis_url:
        found.warnings.extend(_outbox_warnings(found.channels, found.journeys))
    return found


def _configure_each(manager: pluggy.PluginManager, settings: Settings, problems: list[str]) -> bool:
    """Run each plugin's ``loyaloop_configure`` on its own; True when all of them passed."""
    before = len(problems)
    for impl in reversed(manager.hook.loyaloop_configure.get_hookimpls()):
        try:
            impl.function(**{name: settings for name in impl.argnames if name == "settings"})
        except ConfigurationError as exc:
            problems.append(f"channel plugin {impl.plugin_name!r}: {exc}")
        except Exception as exc:  # a plugin's bug: name it, never a traceback
            problems.append(f"channel plugin {impl.plugin_name!r} failed to configure: {type(exc).__name__}: {exc}")
    return len(problems) == before


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def is_outbox(channel: Any) -> bool:
    """A channel that writes to the local outbox file instead of a provider."""
    return type(channel).__name__ == "OutboxChannel"


def _outbox_warnings(channels: dict[str, Channel], journeys: dict[str, Journey]) -> list[str]:
    used = {name for journey in journeys.values() for name in _channels_of(journey)}
    return [
        f"channel {name!r} writes to the outbox file {getattr(channel, 'path', '')} "
        "(its provider's credentials are not set); journeys sending on it reach nobody"
        for name, channel in sorted(channels.items())
        if name in used and name != "outbox" and is_outbox(channel)
    ]


def _channels_of(journey: Journey) -> set[str]:
    return {name for step in _sends(journey) for name in step.channels}


__all__ = ["REDIS_HINT", "SECRET_HINT", "Readiness", "check_startup", "is_outbox", "marketing_senders"]
