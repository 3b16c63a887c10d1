"""`ebbflow bench collect`: the containers input's cycle against the other ways to get the
same numbers, on the containers running now, side by side in one run.

- `collector`: a full cycle (read, parse, rate, samples), as `ebbflow run` does it;
- `bare_read`: only opening and reading the same cgroup and /proc files (the same way, with
  os.read), no parsing: the floor any cgroup-based collector stands on;
- `stats_api`: Docker's one-shot stats API for every container, all concurrently.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from ebbflow.bus import Bus
from ebbflow.model import ContainerInfo
from ebbflow.plugins import PluginContext

from .cgroups import net_dev_path
from .collector import ContainerInput

STATS_API_MAX = 300  # containers


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "median_ms": statistics.median(ms),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "runs": len(ms),
    }


def _raw_read(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 65536)
    finally:
        os.close(fd)


def cycle_files(collector: ContainerInput, containers: list[ContainerInfo]) -> list[str]:
    """Every file a steady-state cycle reads: the cgroup files and the network namespace's
    dev file (threads are counted by state every 10 s, not per cycle)."""
    paths = []
    for info in containers:
        paths += collector.reader.files(collector.watched_of(info).files)
        if info.network_mode != "host":
            paths.append(net_dev_path(collector.proc_root, info.pid))
    return paths


def _bare_read(collector: ContainerInput, containers: list[ContainerInfo]) -> None:
    """Every file a cycle reads, read and nothing else (`cycle_files`)."""
    for path in cycle_files(collector, containers):
        _raw_read(path)


async def local_cycle_files() -> list[str]:
    """The files of a cycle over the running containers of the local engine (for
    benchmarks/cfloor.c, the C floor)."""
    from ebbflow.discovery import Inventory
    from ebbflow.docker_api import DockerHandle
    from ebbflow.nodes import Nodes

    docker = DockerHandle()
    try:
        containers = await docker.running_containers()
        bus = Bus()
        collector = ContainerInput(
            bus, Inventory(Nodes([docker]), bus, time.time), 1.0, 60.0, time.time
        )
        return cycle_files(collector, containers)
    finally:
        await docker.close()


async def bench_collect(ctx: PluginContext, cycles: int = 20) -> dict[str, Any]:
    containers = await ctx.docker.running_containers()
    if not containers:
        raise RuntimeError("no running containers to measure")
    # every container read every cycle (no dynamic housekeeping): the whole cycle's cost
    collector = ContainerInput(Bus(), ctx.inventory, 1.0, 60.0, time.time)
    collector.read_all(containers)  # locate every cgroup once, as a running collector has
    timings: dict[str, list[float]] = {"collector": [], "bare_read": [], "stats_api": []}
    # The API path is slow: a few runs make the point, and past a few hundred containers
    # the engine times out on that many at once (it is ~200x the collector at 200).
    api_cycles = max(1, min(cycles, 3)) if len(containers) <= STATS_API_MAX else 0
    client = ctx.docker.client
    for cycle in range(cycles):  # interleaved, so drift on a noisy machine hits both alike
        started = time.perf_counter()
        collector.read_all(containers)
        timings["collector"].append(time.perf_counter() - started)
        started = time.perf_counter()
        _bare_read(collector, containers)
        timings["bare_read"].append(time.perf_counter() - started)
        if cycle < api_cycles:
            started = time.perf_counter()
            await asyncio.gather(
                *(client.containers.container(c.id).stats(stream=False) for c in containers)
            )
            timings["stats_api"].append(time.perf_counter() - started)
    result: dict[str, Any] = {
        "containers": len(containers),
        "cgroup_version": collector.reader.version,
    }
    result.update({name: _summary(values) for name, values in timings.items() if values})
    collector_ms = result["collector"]["median_ms"]
    result["collector_vs_bare_read"] = collector_ms / result["bare_read"]["median_ms"]
    if timings["stats_api"]:
        result["stats_api_vs_collector"] = result["stats_api"]["median_ms"] / collector_ms
    return result
