"""``loyaloop console``: after ``loyaloop demo``, a console on loopback showing the demo's state."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.http.console.auth import verify_password
from tests.http.helpers import free_port


def test_hash_password_prints_a_hash_that_verifies() -> None:
    result = CliRunner().invoke(cli, ["console", "hash-password", "--stdin"], input="a long passphrase\n")
    assert result.exit_code == 0, result.output
    stored = result.output.strip().splitlines()[0]
    assert stored.startswith("scrypt$") and verify_password("a long passphrase", stored)
    assert "a long passphrase" not in result.output


def test_without_a_state_file_it_says_to_run_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    result = CliRunner().invoke(cli, ["console", "--state", str(tmp_path / "none.json")])
    assert result.exit_code != 0
    assert "run `loyaloop demo` first" in str(result.exception)


@pytest.mark.slow
def test_after_the_demo_the_console_serves_its_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``loyaloop demo --state F`` then ``loyaloop console --state F``: log in with the one-time
    password it prints and see the demo's journeys and a customer."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_SECRET_KEY", raising=False)
    state = tmp_path / "state.json"
    args = ["demo", "--customers", "20", "--days", "20", "--outbox", str(tmp_path / "o.jsonl"), "--state", str(state)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOYALOOP_CONSOLE_USERS")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    command = [sys.executable, "-c", "from orchestrator.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "console", "--state", str(state), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        password = None
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        printed: list[str] = []
        while password is None and time.monotonic() < deadline:
            printed.append(process.stdout.readline())
            found = re.search(r"one-time password (\S+)", printed[-1])
            password = found.group(1) if found else None
        assert password is not None, "no one-time password printed"
        # The demo's simulated clock ended 20 days after its start: the console looks from there.
        assert any("Showing the state as of 2026-01-25" in line for line in printed), printed
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            while time.monotonic() < deadline:
                try:
                    form = http.get("/console/login")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            answer = http.post("/console/login", data={"user": "local", "password": password, "csrf": token.group(1)})
            assert answer.status_code == 303
            overview = http.get("/console/")
            assert overview.status_code == 200 and 'data-journey="welcome"' in overview.text
            assert http.get("/console/customers/cust-0001").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()


def test_beyond_loopback_users_are_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_CONSOLE_USERS", raising=False)
    state = tmp_path / "state.json"
    state.write_text('{"format": "loyaloop-snapshot/1", "keys": []}', encoding="utf-8")
    result = CliRunner().invoke(cli, ["console", "--state", str(state), "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "LOYALOOP_CONSOLE_USERS" in str(result.exception)


@pytest.mark.slow
def test_after_a_simulation_the_console_tells_its_customers_story(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``loyaloop simulate --out DIR`` then ``loyaloop console --simulation DIR``: the worked example
    of docs/simulate.md, with Anna's SMS deferred by quiet hours, her orders and her finished runs
    on her customer page."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    out = tmp_path / "sim"
    example = Path(__file__).resolve().parents[2] / "docs" / "examples"
    mapping = "customer_id=customer,event=kind,timestamp=placed_at,properties.total=amount"
    args = ["simulate", "--quiet", str(example / "orders.csv"), "--map", mapping,
            "--profiles", str(example / "profiles.jsonl"), "--until", "2026-06-30", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (out / "state.json").is_file()
    assert "loyaloop console --simulation" in result.output
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOYALOOP_CONSOLE_USERS")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    command = [sys.executable, "-c", "from orchestrator.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "console", "--simulation", str(out), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        password = None
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while password is None and time.monotonic() < deadline:
            found = re.search(r"one-time password (\S+)", process.stdout.readline())
            password = found.group(1) if found else None
        assert password is not None, "no one-time password printed"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            while time.monotonic() < deadline:
                try:
                    form = http.get("/console/login")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            answer = http.post("/console/login", data={"user": "local", "password": password, "csrf": token.group(1)})
            assert answer.status_code == 303
            page = http.get("/console/customers/anna")
            assert page.status_code == 200
            text = page.text.replace("&#39;", "'")
            assert "quiet hours 21:00-08:00 on sms in Europe/Amsterdam" in text
            assert 'data-kind="event"' in text and "order.placed" in text  # the simulated history's events
            assert '<table id="finished">' in text and "completed" in text
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()
