"""The outbox channel: one JSON line per message, safe under threads and processes, never a key twice."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path

from channels import outbox
from channels.outbox import FIELDS, OutboxChannel
from orchestrator import plugins
from orchestrator.settings import Settings
from tests.channels import factories

REPO = Path(__file__).resolve().parents[2]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_line_has_every_field(tmp_path: Path) -> None:
    """A line carries the documented fields, in order, with the message's values and a send time."""
    path = tmp_path / "outbox.jsonl"
    message = factories.email(headers={"List-Unsubscribe": "<https://x/u>"}, data={"k": "v"}, metadata={"m": "1"})
    receipt = OutboxChannel("email", path).send(message)
    [line] = lines(path)
    assert tuple(line) == FIELDS
    assert line["to"] == "jane@example.com" and line["subject"] == "Welcome to Loyaloop"
    assert line["headers"] == {"List-Unsubscribe": "<https://x/u>"} and line["data"] == {"k": "v"}
    assert line["metadata"] == {"m": "1"} and str(line["sent_at"]).endswith("+00:00")
    assert (receipt.provider, receipt.provider_message_id) == ("outbox", "run-1:welcome_email")
    assert "duplicate" not in receipt.details


def test_same_idempotency_key_is_written_once(tmp_path: Path) -> None:
    """A repeated send (a redelivered task) returns a receipt marked duplicate and writes nothing."""
    path = tmp_path / "outbox.jsonl"
    email = OutboxChannel("email", path)
    sms = OutboxChannel("sms", path, address_field="phone")
    email.send(factories.email())
    again = sms.send(factories.email())  # another channel object on the same file shares the check
    assert again.details["duplicate"] is True
    assert len(lines(path)) == 1


def test_keys_already_in_the_file_are_not_written_again(tmp_path: Path) -> None:
    """A key written by an earlier run (or another process) is seen when the writer catches up with the file."""
    path = tmp_path / "outbox.jsonl"
    path.write_text(json.dumps({"idempotency_key": "run-1:welcome_email"}) + "\n")
    receipt = OutboxChannel("email", path).send(factories.email())
    assert receipt.details["duplicate"] is True
    assert len(lines(path)) == 1


def test_many_threads_append_whole_lines(tmp_path: Path) -> None:
    """Sixteen threads sending 50 messages each (half of them repeats) leave 400 intact lines."""
    path = tmp_path / "outbox.jsonl"
    channel = OutboxChannel("email", path)

    def work(worker: int) -> None:
        for number in range(50):
            key = f"run-{(worker // 2) * 50 + number}:s"  # thread pairs send the same keys
            channel.send(factories.email(idempotency_key=key, body="x" * 2000))

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [line["idempotency_key"] for line in lines(path)]
    assert len(keys) == 400 and len(set(keys)) == 400


def test_many_processes_append_whole_lines_and_never_repeat_a_key(tmp_path: Path) -> None:
    """Four processes writing the same 150 keys concurrently leave exactly 150 intact lines."""
    path = tmp_path / "outbox.jsonl"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from channels.outbox import OutboxChannel
        from tests.channels import factories
        channel = OutboxChannel("email", __import__("pathlib").Path({str(path)!r}))
        for number in range(150):
            channel.send(factories.email(idempotency_key=f"run-{{number}}:s", body="y" * 3000))
        """
    )
    processes = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert [process.wait(timeout=60) for process in processes] == [0, 0, 0, 0]
    keys = [line["idempotency_key"] for line in lines(path)]
    assert sorted(keys) == sorted(f"run-{number}:s" for number in range(150))


def test_outbox_plugin_registers_the_outbox_channel(tmp_path: Path) -> None:
    """The outbox plugin offers `send: outbox` for dry runs, writing to settings.outbox_path."""
    registered: list[object] = []
    outbox.loyaloop_register_channels(register=registered.append, settings=Settings(outbox_path=tmp_path / "o.jsonl"))
    [channel] = registered
    assert isinstance(channel, OutboxChannel) and channel.name == "outbox" and channel.path == tmp_path / "o.jsonl"


def test_writer_recovers_when_the_file_is_removed(tmp_path: Path) -> None:
    """Deleting the outbox (a fresh demo run) starts a new file instead of writing into the unlinked one."""
    path = tmp_path / "outbox.jsonl"
    channel = OutboxChannel("email", path)
    channel.send(factories.email())
    path.unlink()
    receipt = channel.send(factories.email())
    assert "duplicate" not in receipt.details
    assert len(lines(path)) == 1


def test_a_channel_given_a_clock_stamps_sent_at_from_it(tmp_path: Path) -> None:
    """Under the demo's simulated clock a line says when in the story the message went, not when
    the machine wrote it; ``plugins.use_clock`` hands the clock to every channel that takes one."""
    path = tmp_path / "outbox.jsonl"
    simulated = datetime(2026, 2, 3, 20, 15, tzinfo=UTC)
    channel = OutboxChannel("email", path)

    class NoClock:  # a plugin's channel without ``use_clock``: left alone
        name = "sms"

    assert plugins.use_clock({"email": channel, "sms": NoClock()}, lambda: simulated) == 1  # type: ignore[dict-item]
    receipt = channel.send(factories.email())
    [line] = lines(path)
    assert line["sent_at"] == "2026-02-03T20:15:00+00:00" == receipt.details["sent_at"]
