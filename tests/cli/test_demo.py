"""`loyaloop demo` runs the shipped journeys embedded (no Redis server) and prints the table."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.cli.demo_run import journey_row, step_rows
from orchestrator.cli.reference_receiver import running
from orchestrator.language.journey import Journey


@pytest.mark.slow
def test_the_demo_runs_every_shipped_journey_embedded_and_prints_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no REDIS_URL, a small demo fills the outbox and prints one section per journey."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_SECRET_KEY", raising=False)
    outbox = tmp_path / "outbox.jsonl"
    state = tmp_path / "state.json"
    args = ["demo", "--customers", "40", "--days", "45", "--outbox", str(outbox), "--state", str(state)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for journey_id in ("welcome", "winback", "birthday", "replenishment"):
        assert journey_id in result.output
    assert outbox.exists() and outbox.read_text(encoding="utf-8").count("\n") > 20
    assert str(outbox) in result.output.replace("\n", "")
    # It ends with the proof-of-effect report of its own run (`--report none` leaves it out).
    assert "Proof of effect" in result.output and "verdict:" in result.output
    assert state.exists() and "loyaloop console --state" in result.output.replace("\n", "")


@pytest.mark.slow
def test_the_demo_runs_on_a_real_redis_when_redis_url_is_set(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With REDIS_URL the same demo runs on that Redis; a database already in use is refused."""
    import redis

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LOYALOOP_SECRET_KEY", "d" * 40)
    client = redis.Redis.from_url(redis_url)
    client.set("someone-elses-key", "1")
    outbox = tmp_path / "outbox.jsonl"
    args = ["demo", "--customers", "20", "--days", "20", "--outbox", str(outbox)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code != 0 and "not empty" in str(refused.exception)
    result = CliRunner().invoke(cli, [*args, "--flush"])
    assert result.exit_code == 0, result.output
    assert redis_url in result.output and outbox.exists()
    assert client.exists("lp:stats:welcome")
    client.close()


@pytest.mark.slow
def test_the_demo_reports_the_proof_of_effect_of_its_embedded_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded store lives only inside the demo's process, so the demo itself hands its counts
    to the report: every shipped marketing journey with entrants and a verdict."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_SECRET_KEY", raising=False)
    target = tmp_path / "report.json"
    args = ["demo", "--customers", "40", "--days", "30", "--outbox", str(tmp_path / "outbox.jsonl")]
    result = CliRunner().invoke(cli, [*args, "--report", "json", "--report-out", str(target)])
    assert result.exit_code == 0, result.output
    report = json.loads(target.read_text(encoding="utf-8"))
    welcome = next(v for v in report["versions"] if v["journey_id"] == "welcome")
    assert welcome["entrants"] > 0 and welcome["verdict"]
    assert {arm["arm"] for arm in welcome["arms"]} >= {"treated"}


def test_the_report_rows_read_the_per_channel_counters_as_before() -> None:
    """The demo's table sums ``<step>:<outcome>:<channel>`` counters per step (sends per channel,
    refusals, failures with template errors); the figures are the ones the string-matching report printed."""
    offer = Journey.model_validate(
        {"id": "offer", "name": "Offer", "trigger": {"event": "signup"},
         "steps": [{"id": "text", "send": "sms", "template": "hello", "fallback": ["email"]},
                   {"id": "pause", "wait": "1d"},
                   {"id": "mail", "send": "email", "template": "tips"}]}
    )  # fmt: skip
    stats = {
        "_journey:entered": 9, "_journey:completed": 4, "_journey:exited": 1, "_journey:holdout": 1,
        "text:sent:sms": 2, "text:sent:email": 1, "text:sent": 3, "text:deferred:sms": 4, "text:deferred": 3,
        "text:cap_deferred": 1, "text:no_consent:sms": 1, "text:suppressed:email": 2, "text:capped:sms": 5,
        "text:undeliverable": 1, "text:failed:email": 1, "text:retry:sms": 6, "text:holdout": 1,
        "mail:suppressed:email": 5, "mail:retry:email": 7, "mail:no_address:push": 2,
        "mail:template_error:email": 1, "mail:sent:push": 3, "pause:timeout": 3,
    }  # fmt: skip
    # in, hold, conv, exit, done
    assert journey_row(offer, stats) == ["offer", "9", "1", "0", "1", "4", "0"]
    # sent, capd, defr, supp, cons, addr, fail, hold: the status table's labels.  ``fail`` counts a
    # provider's failure and a template error per channel; ``undeliverable`` (no channel could reach
    # the customer) is already counted per channel under supp/cons/addr, not again as a failure.
    assert step_rows(offer, stats) == [
        ["text", "e1 s2", "5", "4", "2", "1", "0", "1", "1"],
        ["mail", "p3", "0", "0", "5", "0", "2", "1", "0"],
    ]


def test_the_demo_and_status_tables_fit_80_columns_with_a_legend() -> None:
    """The tables were ~160 columns wide, with headings cut off at 80 ("suppres…") and no legend."""
    import io

    from rich.console import Console

    from orchestrator.cli.demo_run import SEND_HEADINGS
    from orchestrator.cli.status_table import COLUMNS, JOURNEY_COLUMNS, LEGEND, counts_table

    offer = Journey.model_validate(
        {"id": "referral_third_order", "name": "R", "trigger": {"event": "signup"},
         "steps": [{"id": "third_order_thank_you_email", "send": "sms", "template": "hello"}]}
    )  # fmt: skip
    stats = {"_journey:entered": 123456, "third_order_thank_you_email:sent:sms": 99999}
    out = io.StringIO()
    console = Console(file=out, width=80)
    console.print(counts_table("Journeys", [h for h, _ in JOURNEY_COLUMNS], [(journey_row(offer, stats), [])]))
    console.print(counts_table("Sends", SEND_HEADINGS, [([offer.id], step_rows(offer, stats))]))
    console.print(LEGEND)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for heading in (*SEND_HEADINGS, *(h for h, _ in JOURNEY_COLUMNS)):
        assert f" {heading}" in text  # every heading whole, none cut off
        assert f"{heading}:" in LEGEND
    assert "s99999" in text and "123456" in text and "hold" in text
    assert [h for h, _ in COLUMNS] == list(SEND_HEADINGS[:-1])  # the labels loyaloop status uses


def test_demo_takes_a_templates_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`demo` had --journeys but no --templates; the folder given is the one checked and used."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    empty = tmp_path / "my-templates"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["demo", "--customers", "2", "--days", "1", "--templates", str(empty)])
    assert result.exit_code != 0
    assert str(empty) in str(result.exception)


#: Fields that carry signed links (unsubscribe, preferences): without LOYALOOP_SECRET_KEY the demo
#: signs with a random key of its own per run, so only these may differ between two runs.
SIGNED = ("body", "html", "headers")


def _outbox_lines(path: Path) -> list[dict[str, object]]:
    found = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted(({k: v for k, v in m.items() if k not in SIGNED} for m in found), key=json.dumps)


@pytest.mark.slow
def test_one_seed_tells_one_story_stamped_in_simulated_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs with the same seed write the same outbox, line for line — run ids (from fixed event
    ids) and ``sent_at`` included, since it is the simulated moment (inside the simulated days),
    not the machine's clock."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_SECRET_KEY", raising=False)
    runs, rewards = [], []
    for name in ("one", "two"):
        outbox = tmp_path / f"{name}.jsonl"
        args = ["demo", "--customers", "60", "--days", "40", "--seed", "3", "--outbox", str(outbox)]
        result = CliRunner().invoke(cli, [*args, "--report", "none", "--state", str(tmp_path / f"{name}.json")])
        assert result.exit_code == 0, result.output
        runs.append(_outbox_lines(outbox))
        rewards.append(_rewards(result.output))
    assert runs[0] == runs[1] and len(runs[0]) > 50
    assert rewards[0] == rewards[1] and "RWD-0001" in rewards[0]  # the ledger's account too
    stamps = [datetime.fromisoformat(str(line["sent_at"])) for line in runs[0]]
    start = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    assert all(start <= stamp <= start + timedelta(days=40) for stamp in stamps)
    assert len({stamp.date() for stamp in stamps}) > 10  # spread over the story, not one afternoon


def test_without_outbox_the_demo_leaves_no_file_in_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run left a multi-megabyte ``loyaloop-demo-<time>.jsonl`` behind; ``--outbox`` keeps one."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_SECRET_KEY", raising=False)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    args = ["demo", "--customers", "8", "--days", "10", "--report", "none", "--state", str(tmp_path / "s.json")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert list(scratch.iterdir()) == []
    assert "Outbox: not kept" in " ".join(result.output.split())


def _rewards(output: str) -> str:
    """The demo's account of the rewards: from the ledger's heading to the vouchers' line."""
    text = output[output.index("Rewards at the reference ledger") :]
    return text[: text.index("\n", text.index("Vouchers birthday"))]


@pytest.mark.slow
def test_the_demo_shows_the_rewards_as_the_reference_ledger_recorded_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Referrals are attributed by Loyaloop (friends sign up with a promoter's code and order), both
    sides are credited through the ledger endpoint — answered by the reference receiver on loopback,
    which verified every signature and applied one credit per run and step — and each side's
    message carries the code the ledger answered.  A ledger URL already in the environment is
    never called by the demo's synthetic customers, and is put back afterwards."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_SECRET_KEY", raising=False)
    outbox = tmp_path / "outbox.jsonl"
    with running(b"the-shops-real-ledger-secret-0123456789") as real_ledger:
        monkeypatch.setenv("LOYALTY_LEDGER_URL", real_ledger.url)
        args = ["demo", "--customers", "60", "--days", "45", "--outbox", str(outbox), "--report", "none"]
        result = CliRunner().invoke(cli, [*args, "--state", str(tmp_path / "state.json")])
        assert result.exit_code == 0, result.output
        assert real_ledger.calls == [] and real_ledger.refused == 0
        assert os.environ["LOYALTY_LEDGER_URL"] == real_ledger.url
    assert "LOYALTY_LEDGER_SECRET" not in os.environ
    rewards = _rewards(result.output)
    found = re.search(r"(\d+) credits, one per Idempotency-Key \((\d+) signed calls, 0 repeats, 0 refused\)", rewards)
    assert found is not None, rewards
    credits = int(found.group(1))
    assert credits >= 4 and credits == int(found.group(2))
    per_reason = dict(re.findall(r"(referral_referrer|referral_friend)\s+(\d+) credit", rewards))
    assert per_reason["referral_referrer"] == per_reason["referral_friend"] == str(credits // 2)
    assert re.search(r"Vouchers birthday: [1-9]\d* codes handed out \(all unique\)", rewards), rewards
    # Each side's message shows the code the ledger answered for that side (a message may be held
    # by a cap: a credit is not a message, and is not held with it).
    credited_to = dict(re.findall(r"(RWD-\d{4})\s+\+500 to (\S+)", rewards))
    told: dict[str, str] = {}
    for line in outbox.read_text(encoding="utf-8").splitlines():
        message = json.loads(line)
        if message["step_id"] in ("thank_referrer", "welcome_friend"):
            (code,) = re.findall(r"(?:reference|kenmerk) (RWD-\d{4})", message["body"])
            told[code] = message["customer_id"]
    assert told and all(credited_to.get(code, customer) == customer for code, customer in told.items())
    assert set(told) <= {f"RWD-{n:04d}" for n in range(1, credits + 1)}
    assert {code for code in told if code in credited_to}, "a listed credit's message reached its customer"
