"""An actuator that records what it was asked, for runner and healer tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ebbflow.bus import Bus
from ebbflow.catalog import ServiceCatalog
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.context import DecisionContext
from ebbflow.model import (
    ActionResult,
    ContainerInfo,
    Decision,
    HealingAction,
    OwnershipChange,
    ServiceKey,
)
from ebbflow.nodes import Nodes
from ebbflow.state import DecisionStore


class RecordingActuator:
    name = "recording"

    def __init__(self, delay: float = 0.1, fail_heal: bool = False) -> None:
        self.delay = delay
        self.fail_heal = fail_heal
        self.applied: list[tuple[Decision, frozenset[str]]] = []
        self.healed: list[tuple[str, HealingAction, float]] = []  # (container, action, loop time)
        self.concurrent = 0
        self.most_concurrent = 0
        self.ours: set[str] = set()

    def supports(self, service: ServiceKey) -> bool:
        return service.kind == "compose"

    def can_heal(self, service: ServiceKey) -> bool:
        return service.kind in ("compose", "label", "container")

    def stopped_by_us(self, container_id: str) -> bool:
        return container_id in self.ours

    def acted_on(self, container_id: str) -> bool:
        return container_id in self.ours

    async def apply(
        self, decision: Decision, unhealthy: frozenset[str] = frozenset()
    ) -> ActionResult:
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        await asyncio.sleep(self.delay)
        self.concurrent -= 1
        self.applied.append((decision, unhealthy))
        return ActionResult(decision, True, "done", 0.0)

    async def heal(
        self, service: ServiceKey, container: ContainerInfo, action: HealingAction
    ) -> str:
        self.healed.append((container.name, action, asyncio.get_running_loop().time()))
        if self.fail_heal:
            raise RuntimeError("engine said no")
        return f"{action}ed {container.name}"


class Owner:
    """Ownership a test turns on and off, announced on the bus as the lease announces it."""

    def __init__(self, bus: Bus, leading: bool = True) -> None:
        self.bus = bus
        self.leading = leading
        self.epochs = 0

    def acting(self) -> bool:
        return self.leading

    def owns(self, service: ServiceKey) -> bool:
        return self.leading

    def owner(self, service: ServiceKey) -> str:
        return "test" if self.leading else "another"

    def epoch(self) -> int:
        return self.epochs

    def lead(self, acting: bool = True) -> None:
        self.leading = acting
        self.epochs += 1
        self.bus.publish(OwnershipChange(acting, self.owner(ServiceKey("", "")), "test", 0.0))


def catalog_for(
    bus: Bus, owner: Owner | None = None, clock: Callable[[], float] = time.time
) -> ServiceCatalog:
    """The catalog the deciders read, observing `bus` as in `ebbflow run`."""
    return ServiceCatalog(bus, RulesConfig(), ScopeConfig(), owner or Owner(bus), clock)


def context(
    bus: Bus,
    store: DecisionStore,
    clock: Callable[[], float] = time.time,
    owner: Owner | None = None,
    dry_run: bool = False,
    nodes: Nodes | None = None,
) -> DecisionContext:
    """What the deciders and the runner share, as `ebbflow run` builds it."""
    catalog = catalog_for(bus, owner, clock)
    if nodes is None:
        return DecisionContext(bus, catalog, store, clock, dry_run)
    return DecisionContext(bus, catalog, store, clock, dry_run, nodes)
