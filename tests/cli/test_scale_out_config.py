"""Scale-out configuration mistakes stop a command at start-up with one line that says what to set,
against the real engines: a plain ``REDIS_URL`` at a cluster node, a cluster with a database, a
cluster without a queue, a broker nobody answers on, a namespace that would break key patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.settings import is_cluster_url, without_password
from tests.cluster_server import RedisClusterServers
from tests.redis_server import free_port
from tests.runtime.harness import write_templates


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "journeys").mkdir()
    write_templates(tmp_path / "templates", ["hello"])
    monkeypatch.setenv("LOYALOOP_JOURNEYS", str(tmp_path / "journeys"))
    monkeypatch.setenv("LOYALOOP_TEMPLATES", str(tmp_path / "templates"))
    monkeypatch.setenv("LOYALOOP_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.setenv("LOYALOOP_SECRET_KEY", "k" * 40)
    for name in ("REDIS_URL", "LOYALOOP_BROKER_URL", "LOYALOOP_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit code and stderr of ``loyaloop ARGS`` (the real entry point, in-process)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "a bug in Loyaloop" not in err
    return lines[0]


def test_a_plain_url_at_a_cluster_node_is_refused_with_the_url_to_set(
    folders: Path,
    redis_cluster: RedisClusterServers,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The probe's MovedError at the first key of another node is now a start-up refusal."""
    port = redis_cluster.nodes[1].port
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    code, err = run(capsys, "status")
    assert code == 1
    assert one_line(err) == (
        f"error: REDIS_URL='redis://127.0.0.1:{port}/0' points at a Redis Cluster node; "
        f"set REDIS_URL=redis+cluster://127.0.0.1:{port} (and LOYALOOP_BROKER_URL for the queue)"
    )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"REDIS_URL": "redis+cluster://127.0.0.1:7000/1"}, "a Redis Cluster has database 0 only"),
        ({"REDIS_URL": "redis+cluster://127.0.0.1:7000"}, "set LOYALOOP_BROKER_URL=redis://host:port/0"),
        ({"REDIS_URL": "redis+cluster://127.0.0.1:7000?cluster=true"}, "a cluster URL takes no ?options"),
        ({"LOYALOOP_BROKER_URL": "redis+cluster://127.0.0.1:7000"}, "the queue cannot live on a Redis Cluster"),
        ({"REDIS_URL": "redis://127.0.0.1:7000/0?cluster=true"}, "say a cluster with the scheme"),
        ({"REDIS_URL": "http://127.0.0.1:7000"}, "use redis://host:port/db for one Redis or redis+cluster://"),
        ({"LOYALOOP_NAMESPACE": "shop:{eu}"}, "LOYALOOP_NAMESPACE='shop:{eu}' is not 1 to 32 letters"),
        ({"LOYALOOP_NAMESPACE": "a*"}, "LOYALOOP_NAMESPACE='a*' is not 1 to 32 letters"),
        ({"LOYALOOP_EVENT_SHARDS": "0"}, "LOYALOOP_EVENT_SHARDS='0' is not a whole number of shards"),
    ],
)
def test_a_bad_scale_out_variable_is_one_line_naming_it(
    folders: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    code, err = run(capsys, "track", "c1", "signup")
    assert code == 1
    assert expected in one_line(err)


def test_rabbitmq_that_does_not_answer_is_one_line_without_the_password(
    folders: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = free_port()
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LOYALOOP_BROKER_URL", f"amqp://shop:s3cret@127.0.0.1:{nobody}/%2F")
    code, err = run(capsys, "track", "c1", "signup")
    assert code == 1
    line = one_line(err)
    assert line.startswith(
        f"error: cannot reach RabbitMQ at LOYALOOP_BROKER_URL='amqp://shop:***@127.0.0.1:{nobody}/%2F'"
    )
    assert "s3cret" not in err


def test_a_redis_queue_that_does_not_answer_is_one_line(
    folders: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LOYALOOP_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, err = run(capsys, "track", "c1", "signup")
    assert code == 1
    assert "cannot reach the queue's Redis at" in one_line(err)


def test_urls_say_whether_they_are_a_cluster_and_never_show_a_password() -> None:
    assert is_cluster_url("redis+cluster://h:1") and is_cluster_url("REDISS+CLUSTER://h:1")
    assert not is_cluster_url("redis://h:1/0") and not is_cluster_url(None)
    assert without_password("amqp://u:pw@h:5672/%2F") == "amqp://u:***@h:5672/%2F"
    assert without_password("redis://h:1/0") == "redis://h:1/0"
