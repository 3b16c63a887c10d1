"""The containers input against the real engine: events drive discovery, cgroups give usage."""

import asyncio
import subprocess
import time
from collections.abc import Callable

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.containers import ContainerInput
from ebbflow.collector.containers.fdcache import DescriptorBudget
from ebbflow.discovery import Inventory
from ebbflow.docker_api import DockerHandle
from ebbflow.model import ContainerEvent, ContainerEventKind, SampleBatch
from ebbflow.nodes import Nodes

pytestmark = pytest.mark.integration


async def next_event(
    sub, kind: ContainerEventKind, name: str, timeout: float = 20
) -> ContainerEvent:
    async with asyncio.timeout(timeout):
        while True:
            event = await sub.get()
            if (
                isinstance(event, ContainerEvent)
                and event.kind is kind
                and event.container.name == name
            ):
                return event


async def test_start_and_die_events_and_cgroup_usage(
    run_container: Callable[..., str], project: str
) -> None:
    bus = Bus()
    events = bus.subscribe("events", ContainerEvent, capacity=10_000)
    batches = bus.subscribe("batches", SampleBatch, capacity=10_000)
    docker = DockerHandle()
    inventory = Inventory(Nodes([docker]), bus, time.time)
    collector = ContainerInput(bus, inventory, interval=0.3, timeout=5, clock=time.time)
    tasks = [asyncio.create_task(inventory.run()), asyncio.create_task(collector.run())]
    try:
        await asyncio.wait_for(inventory.discoveries[0].synced.wait(), 20)
        name = f"{project}_burn_1"
        await asyncio.to_thread(
            run_container,
            name,
            "--network",
            "none",
            "--cpus",
            "0.5",
            "--memory",
            "64m",
            "--label",
            f"com.docker.compose.project={project}",
            "--label",
            "com.docker.compose.service=burn",
            cmd=("sh", "-c", "while :; do :; done"),
        )
        started = await next_event(events, ContainerEventKind.START, name)
        assert started.container.cpu_limit_cores == 0.5
        assert started.container.labels["com.docker.compose.service"] == "burn"
        cpu: list[float] = []
        async with asyncio.timeout(20):
            while len(cpu) < 3:
                batch = await batches.get()
                assert isinstance(batch, SampleBatch)
                cpu += [
                    s.value
                    for s in batch.samples
                    if s.name == "ebbflow_container_cpu_percent" and s.label("name") == name
                ]
        # a busy loop under a 0.5-core quota uses (nearly) all of its limit
        assert max(cpu) > 70
        memory = [
            s
            for s in batch.samples
            if s.name == "container_spec_memory_limit_bytes" and s.label("name") == name
        ]
        assert memory[0].value == 64 * 1024 * 1024
        await asyncio.to_thread(
            subprocess.run, ["docker", "kill", name], capture_output=True, timeout=30
        )
        await next_event(events, ContainerEventKind.DIE, name)
        assert all(c.name != name for c in inventory.discoveries[0].containers.values())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await docker.close()


async def test_kept_open_cgroup_files_read_fresh_values_and_fail_once_removed(
    run_container: Callable[..., str], project: str
) -> None:
    """The cycle re-reads its files through descriptors it keeps: on the real cgroupfs a
    kept descriptor gives the current value, and once the container is removed it fails
    (never the last value) and goes back to the budget."""
    name = f"{project}_kept_1"
    await asyncio.to_thread(
        run_container, name, "--network", "none", cmd=("sh", "-c", "while :; do :; done")
    )
    docker = DockerHandle()
    try:
        (info,) = [c for c in await docker.running_containers() if c.name == name]
    finally:
        await docker.close()
    inventory = Inventory(Nodes([docker]), Bus(), time.time)  # never run
    collector = ContainerInput(Bus(), inventory, 1.0, 5, time.time)
    budget = collector.reader.budget
    assert budget is not None and budget.limit >= 512  # the soft limit was raised
    # a budget of its own: the process's one may be taken by what earlier tests here read
    budget = collector.reader.budget = DescriptorBudget(64)
    files = collector.watched_of(info).files
    first = collector.reader.read(files).cpu_seconds
    assert files.kept_open >= 6 and budget.used == files.kept_open
    await asyncio.sleep(0.5)
    second = collector.reader.read(files).cpu_seconds
    assert second - first > 0.2  # the busy loop's CPU time, read again through the same fd
    await asyncio.to_thread(
        subprocess.run, ["docker", "rm", "-f", name], capture_output=True, timeout=30
    )
    with pytest.raises(OSError, match=r"No such file|No such device"):
        collector.reader.read(files)
    collector.read_all([info])  # the collector's cycle: counted, its files given back
    assert collector.read_errors == 1
    assert files.kept_open == 0
    assert budget.used == 0  # (the host's own files came from the process's budget)
