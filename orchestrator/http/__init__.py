"""The HTTP front door: intake API for shops and apps, provider webhooks, unsubscribe page, and the
marketer's console (:mod:`orchestrator.http.console`, mounted under ``/console``).

Build it with :func:`create_app`; serve it with ``loyaloop serve``.  docs/http.md is the reference.

May import ``workers`` (the client bound to the workers' broker) and every layer below; never the
CLI (checked by import-linter, see docs/architecture.md).
"""

from __future__ import annotations

from orchestrator.http.app import create_app
from orchestrator.http.config import HttpConfig, load_http_config
from orchestrator.http.protocol import Intake

__all__ = ["HttpConfig", "Intake", "create_app", "load_http_config"]
