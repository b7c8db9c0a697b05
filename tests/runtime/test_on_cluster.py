"""The runtime's end-to-end tests once more with the state on a real three-master Redis Cluster.

Each module below builds its runtime with :class:`tests.runtime.harness.Harness` (a RedisBroker on
the test's single Redis, in-process Dramatiq workers): with ``LOYALOOP_TEST_STATE_URL`` set, the
Harness keeps the state on the cluster instead (``redis+cluster://``, through
``orchestrator.store.connect.open_redis``), so intake, drains, cohorts, timers and the scheduler,
the gate, consent, profile updates and stats, the HTTP front door's asyncio intake, webhooks and
unsubscribe (page and CLI) all run where every customer's keys are spread over three nodes.  (Some
other modules check single-Redis specifics — a connection pool, a flushed script cache raising — and
are left out.)  They run in a child pytest so the variable reaches every fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster_server import RedisClusterServers
from tests.runtime.harness import STATE_URL_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
MODULES = [
    "tests/runtime/test_batch.py",
    "tests/runtime/test_delivery.py",
    "tests/runtime/test_event_drain.py",
    "tests/runtime/test_fire_order.py",
    "tests/runtime/test_intake.py",
    "tests/runtime/test_runtime.py",
    "tests/runtime/test_runtime_consent.py",
    "tests/runtime/test_runtime_updates.py",
    "tests/runtime/test_security_intake.py",
    "tests/gate/test_policy_journeys.py",
    "tests/workers/test_actors.py",
    "tests/workers/test_scheduler.py",
    "tests/store/test_store.py",
    "tests/store/test_timers.py",
    "tests/store/test_batch.py",
    "tests/gate/test_caps.py",
    "tests/gate/test_policy.py",
    "tests/http/test_end_to_end.py",
    "tests/http/test_intake_api.py",
    "tests/http/test_queue_intake.py",
    "tests/http/test_auth_failures.py",
    "tests/http/test_sendgrid_webhook.py",
    "tests/http/test_twilio_webhook.py",
]


@pytest.mark.slow
def test_the_runtime_end_to_end_tests_pass_with_the_state_on_a_three_master_cluster(
    redis_cluster: RedisClusterServers,
) -> None:
    env = {**os.environ, STATE_URL_VARIABLE: redis_cluster.url}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *MODULES]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout.splitlines()[-1]
