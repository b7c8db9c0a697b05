"""Start a real three-master Redis Cluster on free loopback ports (used by fixtures and benchmarks).

Three ``redis-server --cluster-enabled yes`` processes, each in its own temporary folder, joined by
``redis-cli --cluster create`` into one cluster whose 16,384 slots are split in three, so a client
that ignores ``MOVED`` fails here as it would in production (a single cluster-mode node owning every
slot, :func:`tests.redis_server.start_cluster_node`, catches ``CROSSSLOT`` but never ``MOVED``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import redis

from tests.redis_server import RedisServer, free_port

MASTERS = 3
#: ``cluster-node-timeout``: how long a silent master is tolerated before its replica takes over.
NODE_TIMEOUT_MS = 2000


class RedisClusterServers:
    """Three cluster-mode redis-servers made into one cluster; ``url`` says it is a cluster.

    ``replicas`` per master (0 or 1 in the tests) are started too; ``nodes`` lists every process,
    masters first (the order ``redis-cli --cluster create`` gives the roles in)."""

    def __init__(self, masters: int = MASTERS, *, replicas: int = 0, node_timeout_ms: int = NODE_TIMEOUT_MS) -> None:
        self.masters = masters
        self.replicas = replicas
        self.nodes = [
            RedisServer(
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(node_timeout_ms),
                    "--cluster-port",
                    str(free_port()),  # the default (port + 10000) may be taken
                ]
            )
            for _ in range(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """The Loyaloop spelling of a cluster: ``redis+cluster://`` and one seed node."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def node_urls(self) -> list[str]:
        """A plain ``redis://`` URL per node (what an operator might paste by mistake)."""
        return [node.url for node in self.nodes]

    def start(self) -> RedisClusterServers:
        try:
            for node in self.nodes:
                node.start()
            cli = shutil.which("redis-cli")
            if cli is None:
                raise RuntimeError("redis-cli is not installed; run `bash tests/run.sh` (it installs redis-server)")
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=30,
            )
            self.wait_ok()
        except BaseException:
            self.cleanup()
            raise
        return self

    def wait_ok(self, timeout: float = 15.0) -> None:
        """Until every live node reports ``cluster_state:ok`` and knows every master's slots, and every
        replica's link to its master is up (its first full sync done)."""
        deadline = time.monotonic() + timeout
        for node in self.live():
            client = redis.Redis.from_url(node.url, decode_responses=True)
            try:
                while True:
                    info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                    slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
                    replication = client.info("replication")
                    synced = replication["role"] == "master" or replication.get("master_link_status") == "up"
                    if "cluster_state:ok" in info and len(slots) >= self.masters and synced:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {node.port} never reported cluster_state:ok")
                    time.sleep(0.02)
            finally:
                client.close()

    def live(self) -> list[RedisServer]:
        """The nodes whose process runs (a killed master is left out)."""
        return [node for node in self.nodes if node.process is not None and node.process.poll() is None]

    def role(self, node: RedisServer) -> dict[str, Any]:
        """``INFO replication`` of one node: its role, and for a master its replicas and offset."""
        client = redis.Redis.from_url(node.url, decode_responses=True)
        try:
            return dict(client.info("replication"))
        finally:
            client.close()

    def primaries(self) -> list[RedisServer]:
        """The live nodes that are masters now (after a failover, a promoted replica is one)."""
        return [node for node in self.live() if self.role(node)["role"] == "master"]

    def replica_of(self, master: RedisServer) -> RedisServer | None:
        """The live node replicating ``master`` (None when it has none)."""
        for node in self.live():
            info = self.role(node)
            if info["role"] == "slave" and int(info["master_port"]) == master.port:
                return node
        return None

    def slots_of(self, master: RedisServer) -> set[int]:
        """The hash slots ``master`` serves, as it says itself."""
        client = redis.Redis.from_url(master.url, decode_responses=True)
        try:
            table = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        owned: set[int] = set()
        for start, end, owner, *_replicas in table:
            if int(owner[1]) == master.port:
                owned.update(range(int(start), int(end) + 1))
        return owned

    def kill(self, node: RedisServer) -> None:
        """SIGKILL one node: no shutdown, no last write to its replica."""
        node.stop(kill=True)

    def wait_promoted(self, killed: RedisServer, timeout: float = 30.0) -> float:
        """Seconds until a surviving node serves ``killed``'s slots as master and every live node
        reports ``cluster_state:ok`` again (the failover is over)."""
        started = time.monotonic()
        ports = {node.port for node in self.live()}
        while True:
            done = True
            for node in self.live():
                client = redis.Redis.from_url(node.url, decode_responses=True, socket_timeout=1)
                try:
                    info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                    slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
                except redis.RedisError:
                    done = False
                    continue
                finally:
                    client.close()
                owners = {int(entry[2][1]) for entry in slots}
                if "cluster_state:ok" not in info or killed.port in owners or not owners <= ports:
                    done = False
            if done:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"no replica took over from the master on port {killed.port} in {timeout:.0f} s")
            time.sleep(0.02)

    def waits(self) -> dict[int, int]:
        """``WAIT`` calls per master (by port) since its statistics were last reset (``INFO commandstats``)."""
        found = {}
        for node in self.primaries():
            client = redis.Redis.from_url(node.url, decode_responses=True)
            try:
                stats: dict[str, Any] = client.info("commandstats")
            finally:
                client.close()
            found[node.port] = int(stats.get("cmdstat_wait", {}).get("calls", 0))
        return found

    def client(self, *, decode_responses: bool = True) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=decode_responses)

    def flush(self) -> None:
        """Empty every master (FLUSHALL goes to one node only on a plain client; replicas follow)."""
        for node in self.primaries():
            client = redis.Redis.from_url(node.url)
            client.flushall()
            client.script_flush()
            client.close()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
