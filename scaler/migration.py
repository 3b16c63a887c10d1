"""Moving containers off a node at fault.

With several nodes, a container whose node is at fault (its engine stopped answering, or
its pressure limits were passed) is migrated at once, without a backoff: recreated on the
healthy node with the fewest of its service. The move is recorded, and the original is
removed when its node answers again, so nothing is left behind. Migrations do not count
against the restart budget: the container was not at fault. A restart waiting for such a
container is called off (it would not help); an actuator may answer a node's health its
own way (Swarm drains the node, and makes it active again when it recovers).

Only what ebbflow manages moves (a policy or a probe names it), and never a Swarm task:
Swarm reschedules its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from ebbflow.context import DecisionContext
from ebbflow.healing_policy import DOCKER_RESTARTS, heals_exits, is_managed
from ebbflow.model import (
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    NodeHealthChange,
    OwnershipChange,
    ServiceKey,
)
from ebbflow.plugins import Actuator, WatchesNodes
from ebbflow.services import service_key
from ebbflow.state import Leftover

from .actions import HealAction, NodeAction
from .healing import Healer, slot_key
from .runner import ActionRunner

log = logging.getLogger("ebbflow.scaler.migration")


class Migrator:
    name = "migrator"

    def __init__(
        self,
        ctx: DecisionContext,
        runner: ActionRunner,
        healer: Healer,
        actuators: Sequence[Actuator],
    ) -> None:
        self.runner = runner
        self.healer = healer
        self.catalog = ctx.catalog
        self.nodes = ctx.nodes
        self.store = ctx.store
        self.actuators = list(actuators)
        self.clock = ctx.clock
        self.dry_run = ctx.dry_run
        self.subscription = ctx.bus.subscribe(
            "migrator", ContainerEvent, NodeHealthChange, OwnershipChange, capacity=4096
        )
        # By node, the containers ebbflow would move if the node failed: running ones, and
        # stopped ones that Docker or ebbflow is to bring back.
        self.placed: collections.defaultdict[str, dict[str, ContainerInfo]] = (
            collections.defaultdict(dict)
        )
        self.removing: set[str] = set()  # leftovers whose removal is under way
        self.moving: dict[str, ServiceKey] = {}  # container id → service, while it moves
        self._group: asyncio.TaskGroup | None = None

    def under_way(self, service: ServiceKey) -> bool:
        return service in self.moving.values()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            async for event in self.subscription:
                if isinstance(event, ContainerEvent):
                    self.track(event)
                elif isinstance(event, NodeHealthChange):
                    self.on_node(event)
                elif isinstance(event, OwnershipChange) and event.acting:
                    self.take_up_faulty_nodes()
                    self.remove_leftovers()

    def track(self, event: ContainerEvent) -> None:
        info = event.container
        service = service_key(info.labels, info.name)
        if not info.node or service.kind == "swarm":
            return  # one engine (nowhere to move to), or Swarm (it reschedules itself)
        placed = self.placed[info.node]
        if event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            if is_managed(info.labels):
                placed[info.id] = info
        elif event.kind is ContainerEventKind.DESTROY or (
            event.kind is ContainerEventKind.DIE
            and info.id in placed
            and not heals_exits(placed[info.id].labels, placed[info.id].restart_policy)
            and placed[info.id].restart_policy not in DOCKER_RESTARTS
        ):
            placed.pop(info.id, None)

    def on_node(self, change: NodeHealthChange) -> None:
        for actuator in self.actuators:
            if isinstance(actuator, WatchesNodes):
                self._spawn(self.runner.execute(NodeAction(actuator, change)))
        if not change.healthy:
            self.strand(change.node, f"node {change.node} {change.reason}")
            return
        self.remove_leftovers(change.node)
        # Containers that found no healthy node before may find this one.
        self.take_up_faulty_nodes()

    def take_up_faulty_nodes(self) -> None:
        """What a node at fault asks of the owner, now: after a standby becomes the owner
        (a node lost with the old owner's engine went bad while it stood by, and its
        change of health was seen then, when it could not act), or when a node recovers."""
        for node in self.nodes.states:
            if not self.nodes.healthy(node):
                change = NodeHealthChange(node, False, self.nodes.fault(node), self.clock())
                for actuator in self.actuators:
                    if isinstance(actuator, WatchesNodes):
                        self._spawn(self.runner.execute(NodeAction(actuator, change)))
        for node in list(self.placed):
            if not self.nodes.healthy(node):
                self.strand(node, f"node {node} {self.nodes.fault(node)}")

    def strand(self, node: str, reason: str) -> None:
        """Every managed container of a node at fault moves, unless one already does."""
        for info in list(self.placed[node].values()):
            service = service_key(info.labels, info.name)
            if info.id in self.moving or not self.healer.config.enabled:
                continue
            if not self.catalog.covers(info) or not self.catalog.owns(service):
                continue  # outside the scope, or a standby: the owner moves it
            if self.catalog.paused(service):
                log.info("container %s: %s; not moved: its service is paused", info.name, reason)
                continue
            policy = self.healer.healing_policy(info, service)
            if policy is None or policy.action == "none":
                continue
            key = slot_key(service, info)
            slot = self.healer.slots.get(key)
            if slot is not None and (slot.gave_up or slot.acting):
                continue
            self.healer.stand_down(key)
            self.moving[info.id] = service
            attempt = len(slot.steps) if slot is not None else 0
            self._spawn(self._migrate(info, service, HealAction(
                service, info, "migrate", reason, attempt, key,
            )))  # fmt: skip

    async def _migrate(self, info: ContainerInfo, service: ServiceKey, action: HealAction) -> None:
        try:
            outcome = await self.runner.execute(action)
            if outcome.ok and not self.dry_run:
                # Recorded first: the original is removed when its node answers, even
                # after a restart of ebbflow. The new container is a new slot.
                self.store.record_migration(
                    service, info.id, info.name, info.node, outcome.detail, self.clock()
                )
                self.placed[info.node].pop(info.id, None)
                self.healer.slots.pop(action.slot, None)
        finally:
            self.moving.pop(info.id, None)

    def remove_leftovers(self, *nodes: str) -> None:
        """The originals of migrated containers on healthy nodes (these, or all) whose
        engine this instance may act on: when a node answers again, and when a lease is
        won (with a lease per engine, the node's own comes back a little after it)."""
        for node in nodes or tuple(self.nodes.states):
            if not self.nodes.healthy(node) or not self.nodes.held(node):
                continue
            for leftover in self.store.leftovers(node):
                if leftover.container_id not in self.removing:
                    self.removing.add(leftover.container_id)
                    self._spawn(self._remove_leftover(leftover))

    async def _remove_leftover(self, leftover: Leftover) -> None:
        info = ContainerInfo(leftover.container_id, leftover.container, "", node=leftover.node)
        action = HealAction(
            leftover.service,
            info,
            "remove_leftover",
            f"node {leftover.node} answers again",
            0,
            slot_key(leftover.service, info),
        )
        try:
            outcome = await self.runner.execute(action)
            if outcome.ok:
                self.store.leftover_removed(leftover.container_id, self.clock())
            self.healer.slots.pop(action.slot, None)
        finally:
            self.removing.discard(leftover.container_id)

    def _spawn(self, job: Coroutine[Any, Any, Any]) -> None:
        assert self._group is not None, "called from run()"
        self._group.create_task(job)
