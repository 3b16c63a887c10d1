"""Moving containers off a node at fault, against a recording actuator: at once, only what
ebbflow manages, the originals removed when the node returns, nothing in a dry run, and a
Swarm-style node hook that may fail without harm."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import MappingProxyType

import pytest

from ebbflow.bus import Bus
from ebbflow.config import HealingConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.model import (
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    HealingStep,
    NodeHealthChange,
)
from ebbflow.nodes import Nodes
from ebbflow.scaler.healing import Healer
from ebbflow.scaler.migration import Migrator
from ebbflow.scaler.runner import ActionRunner
from ebbflow.scaler.safety import ActionGate
from ebbflow.state import DecisionStore

from .fakes import Owner, RecordingActuator, context

MANAGED = {"ebbflow.service": "web", "ebbflow.heal.backoff": "0.3"}


def on(node: str, cid: str, name: str, labels: dict[str, str] | None = None) -> ContainerInfo:
    return ContainerInfo(
        cid, name, "img", MappingProxyType(MANAGED if labels is None else labels), node=node
    )


class NodeWatcher(RecordingActuator):
    """Answers node changes like the Swarm actuator (drains), or raises."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.changes: list[tuple[str, bool, bool]] = []

    async def node_changed(self, change: NodeHealthChange, dry_run: bool) -> str | None:
        self.changes.append((change.node, change.healthy, dry_run))
        if self.fail:
            raise RuntimeError("manager unreachable")
        return f"{'activated' if change.healthy else 'drained'} {change.node}"


class Cluster:
    def __init__(
        self,
        tmp_path: Path,
        actuator: RecordingActuator,
        dry_run: bool,
        leader: bool = True,
    ) -> None:
        self.bus = Bus()
        self.nodes = Nodes(DockerHandle(f"tcp://127.0.0.1:9/{n}", node=n) for n in ("n1", "n2"))
        self.actuator = actuator
        self.store = DecisionStore(tmp_path / "state.db")
        self.steps = self.bus.subscribe("test", HealingStep)
        self.owner = Owner(self.bus, leader)
        ctx = context(self.bus, self.store, owner=self.owner, dry_run=dry_run, nodes=self.nodes)
        runner = ActionRunner(ctx, [actuator], ActionGate(100))
        self.healer = Healer(ctx, runner, HealingConfig())
        self.migrator = Migrator(ctx, runner, self.healer, [actuator])

    def seen(self, *infos: ContainerInfo) -> None:
        for info in infos:
            self.bus.publish(ContainerEvent(ContainerEventKind.START, info, time.time()))

    def node(self, name: str, healthy: bool) -> None:
        self.nodes.set_fault(name, "engine", None if healthy else "engine not answering")
        self.bus.publish(NodeHealthChange(name, healthy, "test", time.time()))

    async def steps_for(self, count: int, timeout: float = 3.0) -> list[HealingStep]:
        got = []
        async with asyncio.timeout(timeout):
            while len(got) < count:
                event = await self.steps.get()
                assert isinstance(event, HealingStep)
                got.append(event)
        return got

    async def quiet(self, seconds: float = 0.4) -> None:
        with pytest.raises(TimeoutError):
            await self.steps_for(1, seconds)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Callable[..., Cluster]]:
    tasks: list[asyncio.Task[None]] = []

    def make(
        actuator: RecordingActuator | None = None,
        dry_run: bool = False,
        leader: bool = True,
    ) -> Cluster:
        c = Cluster(tmp_path, actuator or RecordingActuator(delay=0), dry_run, leader)
        tasks.append(asyncio.create_task(c.healer.run()))
        tasks.append(asyncio.create_task(c.migrator.run()))
        return c

    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_failed_nodes_managed_containers_move_at_once_and_return_leaves_nothing(
    cluster: Callable[..., Cluster],
) -> None:
    c = cluster()
    moved = [on("n2", "a", "web-2"), on("n2", "b", "web-3")]
    stays = on("n1", "c", "web-1")
    unmanaged = on("n2", "d", "sidecar", {"ebbflow.service": "web"})
    swarm_task = on("n2", "e", "w.1.x", {**MANAGED, "com.docker.swarm.service.name": "w"})
    c.seen(*moved, stays, unmanaged, swarm_task)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    c.node("n2", healthy=False)
    steps = await c.steps_for(2)
    assert time.monotonic() - started < 0.25  # no backoff: the node, not the container, failed
    assert sorted((s.container, s.action, s.ok) for s in steps) == [
        ("web-2", "migrate", True),
        ("web-3", "migrate", True),
    ]
    assert steps[0].reason == "node n2 test"
    await c.quiet()  # nothing else moves: n1's own, the unmanaged one, the Swarm task
    assert [(leftover.container, leftover.node) for leftover in c.store.leftovers("n2")] == [
        ("web-2", "n2"),
        ("web-3", "n2"),
    ]
    # Back: the originals go. It fails and returns again: nothing moves or goes twice.
    c.node("n2", healthy=True)
    back = await c.steps_for(2)
    assert sorted((s.container, s.action) for s in back) == [
        ("web-2", "remove_leftover"),
        ("web-3", "remove_leftover"),
    ]
    assert c.store.leftovers("n2") == []
    c.node("n2", healthy=False)
    c.node("n2", healthy=True)
    await c.quiet()
    assert [a for _, a, _ in c.actuator.healed].count("migrate") == 2


async def test_a_node_that_failed_before_the_lease_is_left_by_the_new_leader(
    cluster: Callable[..., Cluster],
) -> None:
    c = cluster(leader=False)
    c.seen(on("n2", "a", "web-2"), on("n1", "c", "web-1"))
    await asyncio.sleep(0.05)
    c.node("n2", healthy=False)
    await c.quiet(0.7)  # a standby moves nothing
    c.owner.lead()
    (step,) = await c.steps_for(1)
    assert (step.container, step.action, step.reason) == (
        "web-2",
        "migrate",
        "node n2 engine not answering",
    )
    await c.quiet()


async def test_a_restart_waiting_when_the_node_fails_becomes_one_migration(
    cluster: Callable[..., Cluster],
) -> None:
    c = cluster()
    info = on("n2", "a", "web-2")
    c.seen(info)
    c.bus.publish(ContainerEvent(ContainerEventKind.DIE, info, time.time(), "exited with code 137"))
    await asyncio.sleep(0.05)
    c.node("n2", healthy=False)  # before the 0.3 s restart is due
    (step,) = await c.steps_for(1)
    assert step.action == "migrate"
    await c.quiet(0.5)
    assert [a for _, a, _ in c.actuator.healed] == ["migrate"]


async def test_migration_does_not_spend_the_restart_budget(
    cluster: Callable[..., Cluster],
) -> None:
    c = cluster()
    info = on("n2", "a", "web-2", {**MANAGED, "ebbflow.heal.budget": "0"})
    c.seen(info)
    await asyncio.sleep(0.05)
    c.node("n2", healthy=False)
    (step,) = await c.steps_for(1)
    assert (step.action, step.attempt, step.ok) == ("migrate", 0, True)


async def test_dry_run_migrates_nothing_and_leaves_nothing_to_remove(
    cluster: Callable[..., Cluster],
) -> None:
    c = cluster(dry_run=True)
    c.seen(on("n2", "a", "web-2"))
    await asyncio.sleep(0.05)
    c.node("n2", healthy=False)
    (step,) = await c.steps_for(1)
    assert (step.action, step.dry_run) == ("migrate", True)
    assert step.detail == "dry run: would migrate web-2"
    c.node("n2", healthy=True)
    await c.quiet()
    assert c.actuator.healed == [] and c.store.leftovers("n2") == []


async def test_a_node_hook_drains_and_activates_and_one_that_raises_is_a_failed_step(
    cluster: Callable[..., Cluster],
) -> None:
    watcher = NodeWatcher()
    c = cluster(watcher)
    c.node("n2", healthy=False)
    c.node("n2", healthy=True)
    drained, activated = await c.steps_for(2)
    assert (drained.action, drained.container, drained.detail) == ("drain", "n2", "drained n2")
    assert drained.service.kind == "node"
    assert (activated.action, activated.detail) == ("activate", "activated n2")
    assert watcher.changes == [("n2", False, False), ("n2", True, False)]

    broken = cluster(NodeWatcher(fail=True))
    broken.node("n1", healthy=False)
    (failed,) = await broken.steps_for(1)
    assert (failed.action, failed.ok) == ("drain", False)
    assert "manager unreachable" in failed.detail
    # The healer still heals after its hook raised.
    info = on("n1", "a", "web-1")
    broken.nodes.set_fault("n1", "engine", None)
    broken.bus.publish(ContainerEvent(ContainerEventKind.DIE, info, time.time(), "exited"))
    (restart,) = await broken.steps_for(1)
    assert restart.action == "restart"
