"""The one plugin manager, and the calls the runtime makes through it.

Built-in channels are ordinary plugins: ``pyproject.toml`` declares them in the ``loyaloop``
entry-point group exactly as a third-party distribution would.  :data:`DEFAULT_PLUGINS` is only a
safety net for running from a checkout whose package metadata is missing or stale; a module
already loaded through its entry point is never registered twice.

Hooks whose callers need to know *which* plugin did something (registering a channel, chaining
message changes, observers that may raise) are called one implementation at a time, in pluggy's
own order, rather than through ``pm.hook.*``; everything else goes through pluggy unchanged.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pluggy

from orchestrator import hookspecs
from orchestrator.errors import DeliveryError, LoyaloopError, PluginError
from orchestrator.message import ActionKind, Channel, Message, Receipt
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

#: Built-in plugin modules by entry-point name (mirrors ``[project.entry-points.loyaloop]``).
DEFAULT_PLUGINS: dict[str, str] = {
    "email": "channels.email",
    "sms": "channels.sms",
    "push": "channels.push",
    "outbox": "channels.outbox",
}
#: Comma-separated entry-point names to leave unloaded, e.g. to replace the built-in ``email``.
DISABLE_ENV = "LOYALOOP_DISABLE_PLUGINS"
_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def get_plugin_manager(*, load_entry_points: bool = True, env: dict[str, str] | None = None) -> pluggy.PluginManager:
    """A fresh plugin manager with every installed ``loyaloop`` plugin loaded and checked.

    ``check_pending`` turns a misspelled ``@hookimpl`` (``loyaloop_register_channel``) into a
    ``PluginError`` at start-up instead of a hook that silently never runs.
    """
    environ = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (part.strip() for part in environ.get(DISABLE_ENV, "").split(","))):
        pm.set_blocked(name)
    try:
        if load_entry_points:
            pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
        for name, module_name in DEFAULT_PLUGINS.items():
            if pm.is_blocked(name) or pm.has_plugin(name):
                continue
            module = importlib.import_module(module_name)
            if not pm.is_registered(module):
                pm.register(module, name=name)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin breaks the hook contract: {exc}") from exc
    except ValueError as exc:  # the same module declared under two entry-point names
        raise PluginError(f"a plugin is declared twice: {exc}; remove one of the entry points") from exc
    except ImportError as exc:
        raise PluginError(
            f"a plugin in entry-point group {hookspecs.ENTRY_POINT_GROUP!r} failed to import: {exc}; "
            f"reinstall it or block it with {DISABLE_ENV}=<name>"
        ) from exc
    return pm


def register_plugin(pm: pluggy.PluginManager, plugin: object, name: str | None = None) -> None:
    """Register an in-process plugin (tests, embedding) with the same checks as entry points."""
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name or plugin!r} cannot be registered: {exc}") from exc


def _implementations(hook: pluggy.HookCaller) -> Iterator[pluggy.HookImpl]:
    """Plain implementations in the order pluggy would call them (wrappers make no sense here)."""
    for impl in reversed(hook.get_hookimpls()):
        if not (impl.hookwrapper or impl.wrapper):
            yield impl


def _call(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


def _guarded(impl: pluggy.HookImpl, hook_name: str, **kwargs: Any) -> Any:
    """Call a start-up hook; Loyaloop's own errors pass through, anything else names the plugin."""
    try:
        return _call(impl, **kwargs)
    except LoyaloopError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}") from exc


def _manager(pm: pluggy.PluginManager | None) -> pluggy.PluginManager:
    return get_plugin_manager() if pm is None else pm


def build_channels(settings: Settings, pm: pluggy.PluginManager | None = None) -> dict[str, Channel]:
    """Configure every plugin, then collect the channels they register, refusing duplicates."""
    pm = _manager(pm)
    for impl in _implementations(pm.hook.loyaloop_configure):
        _guarded(impl, "loyaloop_configure", settings=settings)
    channels: dict[str, Channel] = {}
    owners: dict[str, str] = {}
    for impl in _implementations(pm.hook.loyaloop_register_channels):
        plugin_name = impl.plugin_name

        def register(channel: Channel, _plugin: str = plugin_name) -> None:
            if not isinstance(channel, Channel):
                raise PluginError(
                    f"plugin {_plugin!r} registered {channel!r}, which is not a Channel "
                    "(it needs name, address_field, consent_key and send(message) -> Receipt)"
                )
            name = channel.name
            if not isinstance(name, str) or not _CHANNEL_NAME.match(name):
                raise PluginError(
                    f"plugin {_plugin!r} registered a channel named {name!r}; "
                    "use lower-case letters, digits and underscores, starting with a letter"
                )
            if name in channels:
                raise PluginError(
                    f"channel {name!r} is registered twice: by plugin {owners[name]!r} and by plugin {_plugin!r}; "
                    f"uninstall one of them or block one with {DISABLE_ENV}=<plugin name>"
                )
            channels[name] = channel
            owners[name] = _plugin

        _guarded(impl, "loyaloop_register_channels", register=register, settings=settings)
    return channels


def build_action_kinds(settings: Settings, pm: pluggy.PluginManager | None = None) -> dict[str, ActionKind]:
    """Collect the action kinds plugins register (``webhook`` is the built-in one), refusing duplicates."""
    pm = _manager(pm)
    kinds: dict[str, ActionKind] = {}
    owners: dict[str, str] = {}
    for impl in _implementations(pm.hook.loyaloop_register_action_kinds):
        plugin_name = impl.plugin_name

        def register(kind: ActionKind, _plugin: str = plugin_name) -> None:
            if not isinstance(kind, ActionKind) or not isinstance(kind.name, str) or not _CHANNEL_NAME.match(kind.name):
                raise PluginError(
                    f"plugin {_plugin!r} registered {kind!r}, which is not an ActionKind "
                    "(it needs a lower-case name and call(call, config) -> ActionReply)"
                )
            if kind.name in kinds:
                raise PluginError(
                    f"action kind {kind.name!r} is registered twice: by plugin {owners[kind.name]!r} and by "
                    f"plugin {_plugin!r}; uninstall one of them or block one with {DISABLE_ENV}=<plugin name>"
                )
            kinds[kind.name] = kind
            owners[kind.name] = _plugin

        _guarded(impl, "loyaloop_register_action_kinds", register=register, settings=settings)
    return kinds


def prepare_message(pm: pluggy.PluginManager, message: Message, profile: dict[str, Any], journey_id: str) -> Message:
    """Let every plugin adjust the message in turn; each sees the previous plugin's result."""
    for impl in _implementations(pm.hook.loyaloop_prepare_message):
        result = _call(impl, message=message, profile=profile, journey_id=journey_id)
        if result is None:
            continue
        if not isinstance(result, Message):
            raise PluginError(
                f"plugin {impl.plugin_name!r} returned {type(result).__name__} from loyaloop_prepare_message; "
                "return a Message (dataclasses.replace(message, ...)) or None"
            )
        message = result
    return message


def _observe(hook: pluggy.HookCaller, hook_name: str, **kwargs: Any) -> None:
    for impl in _implementations(hook):
        try:
            _call(impl, **kwargs)
        except Exception as exc:
            # The exception text may quote the message (addresses), so only its type is logged.
            log.warning("plugin %r raised %s in %s; ignored", impl.plugin_name, type(exc).__name__, hook_name)


def notify_sent(pm: pluggy.PluginManager, message: Message, receipt: Receipt) -> None:
    """Tell observers a message was accepted; an observer's exception never reaches the caller."""
    _observe(pm.hook.loyaloop_message_sent, "loyaloop_message_sent", message=message, receipt=receipt)


def notify_failed(pm: pluggy.PluginManager, message: Message, error: DeliveryError) -> None:
    """Tell observers a message failed; an observer's exception never reaches the caller."""
    _observe(pm.hook.loyaloop_message_failed, "loyaloop_message_failed", message=message, error=error)


def _merged(hook: pluggy.HookCaller, hook_name: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for impl in _implementations(hook):
        result = _call(impl)
        if result is None:
            continue
        if not isinstance(result, dict):
            raise PluginError(
                f"plugin {impl.plugin_name!r} returned {type(result).__name__} from {hook_name}; return a dict"
            )
        for name, value in result.items():
            if name in merged:
                raise PluginError(
                    f"{hook_name}: {name!r} is provided by plugin {owners[name]!r} and by plugin {impl.plugin_name!r}"
                )
            merged[name] = value
            owners[name] = impl.plugin_name
    return merged


def template_filters(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Every plugin's Jinja2 filters, merged; a name offered twice is a ``PluginError``."""
    return _merged(pm.hook.loyaloop_template_filters, "loyaloop_template_filters")


def template_globals(pm: pluggy.PluginManager) -> dict[str, Any]:
    """Every plugin's Jinja2 globals, merged; a name offered twice is a ``PluginError``."""
    return _merged(pm.hook.loyaloop_template_globals, "loyaloop_template_globals")


def consent_channels(channels: Mapping[str, Channel]) -> frozenset[str]:
    """The names consent is recorded under for these channels (``consent_key``): what ``identify``
    may give or withdraw consent for, so a typo or a made-up channel is refused, not stored."""
    return frozenset(channel.consent_key for channel in channels.values())


def use_clock(channels: Mapping[str, Channel], clock: Callable[[], datetime]) -> int:
    """Hand the runtime's clock to every channel that stamps times itself and can take one (an
    optional ``use_clock(clock)`` method, as the outbox has): under a simulated clock
    (``loyaloop demo``) its records then carry the simulated time.  Channels without the method are
    left alone, so the plugin API does not change.  Returns how many took it."""
    taken = 0
    for channel in channels.values():
        setter = getattr(channel, "use_clock", None)
        if callable(setter):
            setter(clock)
            taken += 1
    return taken
