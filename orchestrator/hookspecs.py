"""The whole plugin contract.  A plugin is a module or object with ``@hookimpl`` functions.

Hooks are called with keyword arguments only; a plugin may accept any subset of a hook's
parameters (pluggy passes just the ones it names).  Built-in channels in ``channels/`` register
through these very hooks, from the same entry-point group (``loyaloop``) as outside plugins, so
nothing a built-in does is out of reach for a third-party package.

Order: plugins are called in pluggy's order, the last registered first, unless an
implementation says ``@hookimpl(tryfirst=True)`` or ``trylast=True``.  Every hook is documented
with its exact signature in ``docs/plugins.md`` (a test holds the two together).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from orchestrator.errors import DeliveryError
from orchestrator.message import ActionKind, Channel, Message, Receipt
from orchestrator.settings import Settings

PROJECT_NAME = "loyaloop"
#: The entry-point group a plugin distribution declares (``[project.entry-points.loyaloop]``).
ENTRY_POINT_GROUP = "loyaloop"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def loyaloop_configure(settings: Settings) -> None:
    """Called once per :func:`orchestrator.plugins.build_channels`, before any channel is registered.

    Read your own configuration here (secrets from the environment, never from a file) and raise
    ``ConfigurationError`` saying which variable to set when something required is missing, so a
    worker refuses to start instead of failing on its first send.
    """


@hookspec
def loyaloop_register_channels(register: Callable[[Channel], None], settings: Settings) -> None:
    """Register delivery channels by calling ``register(channel)`` once per channel.

    ``channel`` satisfies :class:`orchestrator.message.Channel` (``name``, ``address_field``,
    ``consent_key``, ``send(message) -> Receipt``).  Called once when the worker builds its channel
    registry.  A name registered twice is refused at start-up with a ``PluginError`` naming both
    plugins: channels are never silently shadowed.
    """


@hookspec
def loyaloop_register_action_kinds(register: Callable[[ActionKind], None], settings: Settings) -> None:
    """Register kinds of endpoint that ``action`` steps can call, by calling ``register(kind)``.

    ``kind`` satisfies :class:`orchestrator.message.ActionKind` (``name``, ``call(call, config)
    -> ActionReply``).  Settings declare endpoints with ``kind: <name>``;
    ``webhook`` is built in and cannot be replaced.  A name registered twice is refused at
    start-up with a ``PluginError``.
    """


@hookspec
def loyaloop_prepare_message(message: Message, profile: dict[str, Any], journey_id: str) -> Message | None:
    """Adjust a rendered message just before it is sent (UTM parameters, custom args, headers).

    ``profile`` is the customer's ``Profile.context()``.  Return a new ``Message`` (it is frozen:
    use ``dataclasses.replace``) or None to leave it unchanged.  Unlike the other hooks, results
    chain: each plugin receives the message the previous one returned.  Raising here fails the
    send (the runtime treats it as a bug to fix, not as a delivery outcome).
    """


@hookspec
def loyaloop_message_sent(message: Message, receipt: Receipt) -> None:
    """Observe a message the provider accepted (analytics, audit trails).

    Called after the send is recorded.  Must not raise; an exception is logged (plugin name and
    exception type only, never the message) and ignored so an observer cannot break delivery.
    """


@hookspec
def loyaloop_message_failed(message: Message, error: DeliveryError) -> None:
    """Observe a message that failed: ``TransientError`` (will be retried) or ``PermanentError``.

    Same rules as ``loyaloop_message_sent``: exceptions are logged without personal data and ignored.
    """


@hookspec
def loyaloop_template_filters() -> dict[str, Callable[..., Any]] | None:
    """Return Jinja2 filters to add to the sandboxed template and condition environments.

    Names must be unique across plugins (a clash is a ``PluginError``).  Filters run inside the
    sandbox on marketer-written templates, so they must not expose I/O or mutable globals.
    """


@hookspec
def loyaloop_template_globals() -> dict[str, Any] | None:
    """Return values or functions to add as Jinja2 globals in templates and conditions.

    Same uniqueness and sandbox rules as ``loyaloop_template_filters``.
    """
