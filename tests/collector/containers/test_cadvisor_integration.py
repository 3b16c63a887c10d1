"""cAdvisor's series on this engine: a busy container under `--cpus 0.2` is throttled more
every cycle, and each new series carries the value of the cgroup file or `docker inspect`
field it comes from."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.containers import ContainerInput
from ebbflow.discovery import Inventory
from ebbflow.docker_api import DockerHandle
from ebbflow.model import ContainerInfo, Sample
from ebbflow.nodes import Nodes
from tests.conftest import docker_cli

pytestmark = pytest.mark.integration

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def of(samples: list[Sample], name: str) -> Series:
    return {
        (s.name, frozenset((k, v) for k, v in s.labels if k in ("cpu", "state", "failure_type",
                                                                    "scope", "device"))): s.value
        for s in samples
        if s.label("name") == name
    }  # fmt: skip


@contextlib.asynccontextmanager
async def local_collector() -> AsyncIterator[tuple[ContainerInput, list[ContainerInfo]]]:
    """A containers input over this engine's running containers, listed once."""
    docker = DockerHandle()
    try:
        inventory = Inventory(Nodes([docker]), Bus(), time.time)
        await inventory.sync()
        containers = [c for d in inventory.local for c in d.containers.values()]
        yield ContainerInput(Bus(), inventory, 1.0, 10.0, time.time), containers
    finally:
        await docker.close()


def cgroup_dir(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controllers == "" and controller == ""):
            base = Path("/sys/fs/cgroup")
            return (
                base / path.lstrip("/")
                if controller == ""
                else base / controller / path.lstrip("/")
            )
    raise AssertionError(f"no {controller} cgroup for {pid}")


def flat(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


async def test_throttling_grows_and_every_series_matches_its_source(
    run_container: Callable[..., str], project: str
) -> None:
    name = f"{project}-throttled"
    run_container(
        name, "--network", "none", "--cpus", "0.2", "--memory", "64m",
        "--memory-reservation", "32m", "--cpu-shares", "512",
        cmd=("sh", "-c", "while :; do :; done"),
    )  # fmt: skip
    inspect = json.loads(docker_cli("inspect", name))[0]
    async with local_collector() as (collector, containers):
        first = collector.read_all(containers)
        await asyncio.sleep(2.0)
        before = threads(inspect["State"]["Pid"])
        second = collector.read_all(containers)
        after = threads(inspect["State"]["Pid"])
    verify(first, second, name, inspect, (before, after))


def threads(pid: int) -> int:
    """The threads in the container's cgroup now, from the file cAdvisor counts."""
    v1 = not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    listing = cgroup_dir(pid, "cpu") / "tasks" if v1 else cgroup_dir(pid, "") / "cgroup.threads"
    return len(listing.read_text().split())


def verify(
    first: list[Sample],
    second: list[Sample],
    name: str,
    inspect: dict[str, Any],
    around: tuple[int, int],
) -> None:
    pid = inspect["State"]["Pid"]
    a, b = of(first, name), of(second, name)

    throttled = ("container_cpu_cfs_throttled_periods_total", frozenset())
    periods = ("container_cpu_cfs_periods_total", frozenset())
    assert b[throttled] > a[throttled] >= 0  # a busy loop under 0.2 cores: throttled each period
    assert b[periods] - a[periods] >= 10  # 100 ms periods, 2 s apart
    assert b[("container_cpu_cfs_throttled_seconds_total", frozenset())] > 0
    # what `ebbflow.scale.metric=throttling` reads: nearly every period of the last cycle
    assert b[("ebbflow_container_cpu_throttled_percent", frozenset())] > 50
    assert ("ebbflow_container_cpu_throttled_percent", frozenset()) not in a  # one cycle: none

    v1 = not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    if v1:
        cpu, memory = cgroup_dir(pid, "cpu"), cgroup_dir(pid, "memory")
        stat = flat(cpu / "cpu.stat")  # read after the collector: at least its values
        assert a[periods] <= b[periods] <= stat["nr_periods"]
        assert b[throttled] <= stat["nr_throttled"]
        assert b[("container_memory_failcnt", frozenset())] <= int(
            (memory / "memory.failcnt").read_text()
        )
        mstat = flat(memory / "memory.stat")
        assert b[("container_memory_mapped_file", frozenset())] >= 0
        faults = frozenset({("failure_type", "pgfault"), ("scope", "container")})
        assert b[("container_memory_failures_total", faults)] <= mstat["pgfault"]
        assert b[("container_memory_max_usage_bytes", frozenset())] <= int(
            (memory / "memory.max_usage_in_bytes").read_text()
        )
    host = inspect["HostConfig"]
    assert b[("container_spec_cpu_quota", frozenset())] == 20000  # 0.2 × the 100 ms period
    assert b[("container_spec_cpu_period", frozenset())] == 100000
    assert b[("container_spec_cpu_shares", frozenset())] == host["CpuShares"] == 512
    assert b[("container_spec_memory_limit_bytes", frozenset())] == host["Memory"]
    assert (
        b[("container_spec_memory_reservation_limit_bytes", frozenset())]
        == host["MemoryReservation"]
    )
    if v1 and (cgroup_dir(pid, "memory") / "memory.memsw.limit_in_bytes").exists():
        assert b[("container_spec_memory_swap_limit_bytes", frozenset())] == host["MemorySwap"]
    assert (
        b[("container_memory_max_usage_bytes", frozenset())]
        >= b[("container_memory_usage_bytes", frozenset())] * 0.5
    )
    running = b[("container_tasks_state", frozenset({("state", "running")}))]
    states = sum(v for (n, _), v in b.items() if n == "container_tasks_state")
    # the shell (and whatever the engine runs in it at that instant): the source's count,
    # read just before and just after the collector
    assert running >= 0 and min(around) >= 1 and min(around) <= states <= max(around)
    assert b[("container_cpu_load_average_10s", frozenset())] >= 0
    assert ("container_cpu_usage_seconds_total", frozenset({("cpu", "total")})) in b

    root = {s.name: s.value for s in second if s.label("id") == "/" and not s.label("cpu")}
    root_cpu = [s.value for s in second if s.name == "container_cpu_usage_seconds_total"
                and s.label("id") == "/"]  # fmt: skip
    assert root_cpu and root_cpu[0] > b[("container_cpu_usage_seconds_total",
                                           frozenset({("cpu", "total")}))]  # fmt: skip
    assert root["container_memory_usage_bytes"] > 0
    machine = {s.name: s.value for s in second if s.name.startswith("machine_")}
    assert machine["machine_cpu_cores"] == os.cpu_count()
    assert machine["machine_memory_bytes"] > 0


async def test_fs_usage_is_the_writable_layer_as_du_counts_it(
    run_container: Callable[..., str], project: str
) -> None:
    name = f"{project}-writer"
    run_container(
        name, "--network", "none",
        cmd=("sh", "-c", "dd if=/dev/zero of=/big bs=1M count=5 2>/dev/null; sleep 600"),
    )  # fmt: skip
    inspect = json.loads(docker_cli("inspect", name))[0]
    for _ in range(50):  # the 5 MiB written
        if await asyncio.to_thread(du_layer, inspect["Id"]) >= 5 << 20:
            break
        await asyncio.sleep(0.2)
    async with local_collector() as (collector, containers):
        await collector.prepare()
        samples = collector.read_all(containers)
        expected = await asyncio.to_thread(du_layer, inspect["Id"])
    mine = {s.name: s for s in samples if s.label("name") == name}
    usage_sample = mine["container_fs_usage_bytes"]
    assert usage_sample.value == expected >= 5 << 20
    limit = mine["container_fs_limit_bytes"]
    assert limit.value >= usage_sample.value and limit.label("device") == usage_sample.label(
        "device"
    )
    assert usage_sample.label("device")


def du_layer(container_id: str) -> int:
    """`du` over the container's writable layer and log directory, as cAdvisor counts."""
    import subprocess

    root, driver = docker_cli("info", "--format", "{{.DockerRootDir}} {{.Driver}}").split()
    mounts = Path(root) / "image" / driver / "layerdb" / "mounts" / container_id
    mount_id = (mounts / "mount-id").read_text().strip()
    layer = {"overlay2": f"overlay2/{mount_id}/diff", "vfs": f"vfs/dir/{mount_id}"}[driver]
    logs = f"{root}/containers/{container_id}"
    out = subprocess.run(
        ["du", "-s", "-c", "--block-size=1", f"{root}/{layer}", logs],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return int(out.splitlines()[-1].split()[0])


def net_dev(pid: int) -> dict[str, list[int]]:
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return {
        iface.strip(): [int(x) for x in rest.split()]
        for iface, _, rest in (line.partition(":") for line in lines)
    }


async def test_the_hosts_network_is_cadvisors_root_row() -> None:
    """container_network_*{id="/"}: the root namespace's interfaces, as cAdvisor lists
    them (no lo, veth or docker bridges), each between /proc/net/dev read just before and
    just after (within 1 %: traffic moves between the reads)."""
    async with local_collector() as (collector, _):
        before = net_dev(1)
        samples = collector.read_root(time.time())
        after = net_dev(1)
    got = {
        (s.name, s.label("interface")): s.value
        for s in samples
        if s.name.startswith("container_network_") and s.label("id") == "/"
    }
    interfaces = {iface for _, iface in got}
    expected = {i for i in before if not i.lower().startswith(("lo", "veth", "docker"))}
    assert interfaces == expected and interfaces, (interfaces, sorted(before))
    for (name, iface), value in got.items():
        column = {"container_network_receive_bytes_total": 0,
                  "container_network_receive_packets_total": 1,
                  "container_network_receive_errors_total": 2,
                  "container_network_receive_packets_dropped_total": 3,
                  "container_network_transmit_bytes_total": 8,
                  "container_network_transmit_packets_total": 9,
                  "container_network_transmit_errors_total": 10,
                  "container_network_transmit_packets_dropped_total": 11}[name]  # fmt: skip
        low, high = before[iface][column], after[iface][column]
        assert low * 0.99 <= value <= high * 1.01 + 1, (name, iface, low, value, high)
