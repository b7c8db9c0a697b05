"""The whole plugin contract.  A plugin is a module or object with ``@hookimpl`` functions.

Hooks are called with keyword arguments only; a plugin may accept any subset of a hook's
parameters.  Built-in channels in ``channels/`` register through these very hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from orchestrator.errors import DeliveryError
from orchestrator.message import Channel, Message, Receipt
from orchestrator.settings import Settings

hookspec = pluggy.HookspecMarker("loyaloop")
hookimpl = pluggy.HookimplMarker("loyaloop")


@hookspec
def loyaloop_configure(settings: Settings) -> None:
    """Called once at start-up, before any other hook, with the loaded settings.

    Read your own configuration here (from the environment for secrets) and raise
    ``ConfigurationError`` with the fix when something required is missing.
    """


@hookspec
def loyaloop_register_channels(register: Callable[[Channel], None], settings: Settings) -> None:
    """Register delivery channels by calling ``register(channel)`` once per channel.

    Called once when the plugin manager builds the channel registry.  A name registered twice
    is refused at start-up with a ``PluginError`` naming both plugins.
    """


@hookspec
def loyaloop_prepare_message(message: Message, profile: dict[str, Any], journey_id: str) -> Message | None:
    """Adjust a rendered message just before it is sent (UTM parameters, custom args).

    Return a new ``Message`` (it is frozen: use ``dataclasses.replace``) or None to leave it.
    Plugins run in registration order, each seeing the previous one's result.
    """


@hookspec
def loyaloop_message_sent(message: Message, receipt: Receipt) -> None:
    """Observe a message the provider accepted.  Must not raise; errors are logged and ignored."""


@hookspec
def loyaloop_message_failed(message: Message, error: DeliveryError) -> None:
    """Observe a message that failed, transiently (will retry) or permanently (will not)."""


@hookspec
def loyaloop_template_filters() -> dict[str, Callable[..., Any]] | None:
    """Return Jinja2 filters to add to the sandboxed template and condition environments."""


@hookspec
def loyaloop_template_globals() -> dict[str, Any] | None:
    """Return values or functions to add as Jinja2 globals in templates and conditions."""
