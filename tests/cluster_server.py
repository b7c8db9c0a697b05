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

import redis

from tests.redis_server import RedisServer, free_port

MASTERS = 3


class RedisClusterServers:
    """Three cluster-mode redis-servers made into one cluster; ``url`` says it is a cluster."""

    def __init__(self, masters: int = MASTERS) -> None:
        self.nodes = [
            RedisServer(
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--cluster-port",
                    str(free_port()),  # the default (port + 10000) may be taken
                ]
            )
            for _ in range(masters)
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
                [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
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
        """Until every node reports ``cluster_state:ok`` and knows every other node's slots."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            client = redis.Redis.from_url(node.url, decode_responses=True)
            try:
                while True:
                    info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                    slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
                    if "cluster_state:ok" in info and len(slots) >= len(self.nodes):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {node.port} never reported cluster_state:ok")
                    time.sleep(0.02)
            finally:
                client.close()

    def client(self, *, decode_responses: bool = True) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=decode_responses)

    def flush(self) -> None:
        """Empty every master (FLUSHALL goes to one node only on a plain client)."""
        for node in self.nodes:
            client = redis.Redis.from_url(node.url)
            client.flushall()
            client.script_flush()
            client.close()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
