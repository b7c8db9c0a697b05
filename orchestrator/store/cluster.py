"""A Redis Cluster client whose pipelines survive scripts a node has never seen (``NOSCRIPT``).

redis-py's ``ClusterPipeline`` sends ``EVALSHA`` to the node of each command's slot but never loads a
script there (a plain ``Pipeline`` loads its scripts before it runs), so a script first used inside
a cluster pipeline fails with ``NoScriptError`` on every node that has not run it yet — and on a
promoted replica after a failover, whose script cache starts empty.  Here a pipeline runs with its
errors in place, the scripts refused are loaded on every primary, and only the commands that were
refused are sent once more: a refused ``EVALSHA`` did not run, so nothing runs twice (sending the
whole pipeline again would push events twice).

Scripts are known by source from :class:`~orchestrator.store.batch.Script` (the packer's registry)
and from every ``register_script`` on this client.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import ClusterPipeline
from redis.commands.core import Script as RedisScript

from orchestrator.store.batch import script_source


class ScriptingCluster(redis.RedisCluster):
    """``RedisCluster`` with NOSCRIPT-safe pipelines (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sources: dict[str, str] = {}

    def register_script(self, script: Any) -> RedisScript:
        registered = super().register_script(script)
        self.sources[registered.sha] = script if isinstance(script, str) else script.decode()
        return registered

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe: Any = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        if not transaction:  # a MULTI block runs whole or not at all: redis-py's own handling stands
            pipe.__class__ = ScriptingPipeline
            pipe_any: Any = pipe
            pipe_any.owner = self
            pipe_any.sent = []
        return pipe

    def source_of(self, sha: str) -> str | None:
        return self.sources.get(sha) or script_source(sha)


class ScriptingPipeline(ClusterPipeline):
    """What :meth:`ScriptingCluster.pipeline` hands out: it remembers what it queued."""

    owner: ScriptingCluster
    sent: list[tuple[tuple[Any, ...], dict[str, Any]]]

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((args, kwargs))
        return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        sent, self.sent = self.sent, []
        replies = list(super().execute(raise_on_error=False))
        refused = [
            i
            for i, reply in enumerate(replies)
            if isinstance(reply, redis.exceptions.NoScriptError)
            and str(sent[i][0][0]).upper() == "EVALSHA"
            and self.owner.source_of(str(sent[i][0][1])) is not None
        ]
        if refused:
            for sha in dict.fromkeys(str(sent[i][0][1]) for i in refused):
                source = self.owner.source_of(sha)
                assert source is not None
                self.owner.script_load(source)  # every primary (redis-py's routing of SCRIPT LOAD)
            again: Any = self.owner.pipeline(transaction=False)
            for i in refused:
                args, kwargs = sent[i]
                again.execute_command(*args, **kwargs)
            for i, reply in zip(refused, again.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies
