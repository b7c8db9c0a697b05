"""``loyaloop serve`` mounts the console under ``/console`` when console users are configured."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.http.console.auth import hash_password
from tests.http.test_serve import CLI, environment, serving
from tests.redis_server import free_port


@pytest.mark.slow
def test_serve_mounts_the_console_behind_its_login(redis_url: str, tmp_path: Path) -> None:
    users = f"ana:{hash_password('ana long passphrase', n=2**12)}:support"
    env = environment(redis_url, tmp_path, LOYALOOP_CONSOLE_USERS=users, LOYALOOP_SECRET_KEY="s" * 40)
    env["LOYALOOP_JOURNEYS"] = str(Path.cwd() / "journeys")  # the console draws the shipped journeys
    with serving(env, tmp_path, workers=1) as (client, _log):
        assert client.get("/console/login").status_code == 200
        refused = client.get("/console/")
        assert refused.status_code == 303 and refused.headers["location"].endswith("/console/login")
        assert client.get("/console/journeys/welcome").status_code == 303


def test_serve_without_console_users_has_no_console(redis_url: str, tmp_path: Path) -> None:
    with serving(environment(redis_url, tmp_path), tmp_path, workers=1) as (client, _log):
        assert client.get("/console/login").status_code == 404


def test_a_malformed_user_list_is_refused_at_start(redis_url: str, tmp_path: Path) -> None:
    env = environment(redis_url, tmp_path, LOYALOOP_CONSOLE_USERS="ana:not-a-hash:viewer")
    result = subprocess.run(
        [*CLI, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert "not a scrypt hash" in result.stderr and "Traceback" not in result.stderr
