"""Same answers as production: one history through ``simulate`` and through real Dramatiq workers
on a real redis-server, with the same virtual clock, gives the same messages and decisions."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from orchestrator.simulate.driver import Driver, WorkerPump
from orchestrator.simulate.recorder import Recorder
from orchestrator.simulate.simulation import load_setup, simulate
from orchestrator.simulate.source import read_history
from orchestrator.workers.embedded import Embedded, SimClock
from tests.simulate.make_history import history, lines_text

SEED = 5
ROOT = Path(__file__).resolve().parents[2]


def _journeys_with_a_holdout(tmp_path: Path) -> Path:
    """The shipped journeys and settings, with a 30 % holdout on the welcome series."""
    folder = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", folder)
    welcome = folder / "welcome.yaml"
    text = welcome.read_text()
    if re.search(r"^holdout:", text, re.M):
        text = re.sub(r"^holdout: .*$", "holdout: 30", text, count=1, flags=re.M)
    else:
        text = text.replace("re_entry: never\n", "re_entry: never\nholdout: 30\n", 1)
    welcome.write_text(text)
    return folder


def _history(tmp_path: Path, customers: int = 60, orders: int = 160, months: int = 4) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_text("".join(lines_text(history(customers, orders, months, seed=SEED))), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.usefixtures("shop_ledger")  # the workers' referral journeys call the ledger endpoint
def test_simulate_and_real_workers_on_a_real_redis_agree(tmp_path: Path, redis_url: str) -> None:
    """Every message (time, customer, journey, step, channel, template, rendered subject and first
    line) and every held send (capped by which rule, deferred until when, no consent, holdout…)."""
    path = _history(tmp_path)
    setup = load_setup(_journeys_with_a_holdout(tmp_path), ROOT / "templates", SEED)
    assert setup.journeys["welcome"].holdout == 30
    lines = read_history(path, seed=SEED).lines
    until = lines[-1].at
    simulated = simulate(setup, lines, until=until, backend="fakeredis")

    clock = SimClock(lines[0].at)
    settings = setup.settings.model_copy(update={"redis_url": redis_url})
    recorder = Recorder(clock)
    with Embedded(settings, journeys=setup.journeys, clock=clock, threads=4) as system:
        recorder.attach(system.runtime)
        Driver(WorkerPump(system), clock, setup.journeys).run(lines, until=until)

    produced = recorder.sorted_messages()
    assert len(produced) > 100, "the history must make the journeys send"
    assert {row["channel"] for row in produced} == {"email", "sms", "push"}
    held = {row["outcome"] for row in recorder.sorted_decisions()}
    assert {"capped", "deferred", "no_consent", "no_address", "holdout"} <= held
    assert simulated.messages == produced
    assert simulated.decisions == recorder.sorted_decisions()
    assert simulated.recorder.sorted_runs() == recorder.sorted_runs()


@pytest.mark.slow
def test_both_private_backends_agree(tmp_path: Path) -> None:
    """The in-process Redis (fakeredis) and a private redis-server give the same run."""
    path = _history(tmp_path, customers=30, orders=80, months=3)
    setup = load_setup(None, None, SEED)
    lines = read_history(path, seed=SEED).lines
    one = simulate(setup, lines, until=lines[-1].at, backend="fakeredis")
    two = simulate(setup, lines, until=lines[-1].at, backend="redis-server")
    assert one.messages and one.messages == two.messages
    assert json.dumps(one.decisions) == json.dumps(two.decisions)
