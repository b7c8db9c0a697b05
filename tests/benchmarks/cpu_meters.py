"""CPU time read from the processes that did the work, for figures that hold on a shared machine.

Wall-clock rates swing with whatever else runs on the cores; CPU time a process spent swings far
less, so the capacity model (docs/scaling.md) is built on CPU seconds: this process's (the worker
threads run in it), each Redis's own (``INFO cpu``), and RabbitMQ's Erlang VM's (``/proc``: the
management plugin is not enabled on the test node, and ``rabbitmq-diagnostics`` takes seconds to
start an Erlang node of its own, longer than a small run).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable
from typing import Any

import redis

#: Clock ticks per second, the unit of ``utime``/``stime`` in ``/proc/<pid>/stat``.
TICKS = os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds (user + system) this process has used so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(urls: Iterable[str]) -> float:
    """CPU seconds every Redis at ``urls`` has used so far (``used_cpu_user`` + ``used_cpu_sys``)."""
    total = 0.0
    for url in urls:
        client = redis.Redis.from_url(url)
        try:
            info: dict[str, Any] = client.info("cpu")
        finally:
            client.close()
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def redis_commands(urls: Iterable[str]) -> dict[str, tuple[int, float]]:
    """Calls and microseconds per command since the last ``CONFIG RESETSTAT``, summed over ``urls``
    (``INFO commandstats``: the commands' own time, without reading and parsing the requests)."""
    totals: dict[str, tuple[int, float]] = {}
    for url in urls:
        client = redis.Redis.from_url(url)
        try:
            stats: dict[str, Any] = client.info("commandstats")
        finally:
            client.close()
        for name, row in stats.items():
            calls, usec = totals.get(name.removeprefix("cmdstat_"), (0, 0.0))
            totals[name.removeprefix("cmdstat_")] = (calls + int(row["calls"]), usec + float(row["usec"]))
    return totals


def reset_commands(urls: Iterable[str]) -> None:
    for url in urls:
        client = redis.Redis.from_url(url)
        try:
            client.config_resetstat()
        finally:
            client.close()


def process_cpu(pid: int) -> float:
    """CPU seconds process ``pid`` has used (``utime`` + ``stime`` from ``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        text = handle.read()
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces; fields start at "state"
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of the line


def threads_cpu(pid: int) -> float:
    """CPU seconds the live threads of ``pid`` have run, to the nanosecond (``schedstat`` of each
    task): ``utime``/``stime`` count whole ticks (10 ms here), too coarse for a broker that spends
    tens of milliseconds on a phase.  Threads that have exited are not counted; the Erlang VM's
    scheduler threads live as long as the VM."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as handle:
                total += int(handle.read().split()[0])
        except FileNotFoundError:
            continue  # the thread ended between the listing and the read
    return total / 1e9


def group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in process group ``pgid`` (:func:`threads_cpu` of each).

    RabbitMQ's server script starts ``beam.smp`` (the Erlang VM, where the broker runs) and small
    helpers in its own session; the sum is the broker's own CPU, almost all of it the VM's."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) == pgid:
                total += threads_cpu(int(entry))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue  # gone between the listing and the read
    return total
