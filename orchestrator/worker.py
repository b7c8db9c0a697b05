"""The module ops point Dramatiq at: ``dramatiq orchestrator.worker -p N -t M``.

Importing it is a worker process's start-up.  Before it takes any work, the process runs
:func:`orchestrator.runtime.readiness.check_startup`: ``REDIS_URL`` set, every journey and template
loaded and checked (with the plugins' channels, filters and globals), every channel plugin
configured, ``LOYALOOP_SECRET_KEY`` when a marketing journey sends, ``LOYALOOP_PUBLIC_URL`` when
its links must reach customers.  Any problem stops the process with one line per problem on
stderr (each naming its fix) and exit status 3, never a traceback; Dramatiq's parent process then
stops the rest.  A clean start logs the journeys it serves as ``id@version`` and announces them
in Redis for ``loyaloop status`` (:mod:`orchestrator.workers.serving`).

The process serves exactly the journeys it checked: it never re-reads the folder, so a deploy
changes versions by restarting the workers (see docs/runtime.md, "Deploying a journey change").
A worker without ``REDIS_URL`` would wait forever on an in-memory broker nobody feeds, so it
refuses to start; the in-process default is :mod:`orchestrator.workers.embedded` (``loyaloop demo``).

Environment: see :mod:`orchestrator.workers.broker`.  With ``LOYALOOP_METRICS=1`` every worker process's
metrics (Dramatiq's and :mod:`orchestrator.metrics`) are served on port ``dramatiq_prom_port``
(9191).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from orchestrator.errors import LoyaloopError
from orchestrator.runtime.readiness import check_startup
from orchestrator.settings import load_settings
from orchestrator.workers.broker import build_broker, setup
from orchestrator.workers.serving import keep_announcing

__all__ = ["EXIT_NOT_READY", "actors", "broker", "build_broker", "setup"]

#: Exit status of a worker process refused at start-up (Dramatiq's own codes are 0-2).
EXIT_NOT_READY = 3

log = logging.getLogger("loyaloop.worker")


def _refuse(lines: list[str]) -> NoReturn:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    sys.stderr.flush()
    raise SystemExit(EXIT_NOT_READY)


try:
    _settings = load_settings()
except LoyaloopError as exc:
    _refuse(str(exc).splitlines())
_found = check_startup(_settings)
if not _found.ok:
    _refuse(_found.problems)
for _warning in _found.warnings:
    log.warning("%s", _warning)
log.info("worker process %d serves journeys %s", os.getpid(), _found.loaded())
broker, actors = setup(_settings, journeys=_found.journeys)
assert _settings.redis_url is not None  # check_startup refused an unset one
keep_announcing(_settings.redis_url, _found.loaded())
