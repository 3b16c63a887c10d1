"""A service on a virtual clock, fed straight into the real RuleEngine."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ebbflow.bus import Bus
from ebbflow.catalog import ServiceCatalog
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.context import DecisionContext
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    PolicyProblem,
    Sample,
    ServiceKey,
    labels_of,
)
from ebbflow.policy import CPU_METRIC
from ebbflow.rules.engine import RuleEngine
from ebbflow.state import DecisionStore

WEB = ServiceKey("compose", "web", "shop")
COMPOSE = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}


class Harness:
    def __init__(
        self,
        store: DecisionStore,
        clock,
        labels: Mapping[str, str],
        dry_run: bool = False,
        defaults: RulesConfig | None = None,
    ) -> None:
        self.bus = Bus()
        self.events = self.bus.subscribe("test", Decision, PolicyProblem)
        self.clock = clock
        defaults = defaults or RulesConfig()
        self.catalog = ServiceCatalog(self.bus, defaults, ScopeConfig(), clock=clock)
        ctx = DecisionContext(self.bus, self.catalog, store, clock, dry_run)
        self.engine = RuleEngine(ctx, defaults)
        self.labels = {**COMPOSE, **labels}
        self.names: list[str] = []
        self.made: list[Decision] = []
        self.serial = 0

    def start(self, n: int = 1) -> list[str]:
        started = []
        for _ in range(n):
            self.serial += 1
            name = f"shop_web_{self.serial}"
            self.names.append(name)
            info = ContainerInfo(
                id=name,
                name=name,
                image="i",
                created=self.clock(),
                started_at=self.clock(),
                labels=MappingProxyType(self.labels),
            )
            self.event(ContainerEvent(ContainerEventKind.START, info, self.clock()))
            started.append(name)
        return started

    def stop_newest(self) -> None:
        name = self.names.pop()
        info = ContainerInfo(id=name, name=name, image="i")
        self.event(ContainerEvent(ContainerEventKind.DIE, info, self.clock()))

    def telemetry(self) -> dict[str, float]:
        """The engine's and the catalog's own metrics, by name (the last of each name)."""
        samples = [*self.engine.telemetry(self.clock()), *self.catalog.telemetry(self.clock())]
        return {s.name: s.value for s in samples}

    def event(self, event: ContainerEvent) -> None:
        """As live: the catalog observes the event on the bus, then the engine handles it."""
        self.bus.publish(event)
        self.engine.on_container(event)

    def samples(
        self, value: float, metric: str = CPU_METRIC, names: list[str] | None = None
    ) -> list[Decision]:
        now = self.clock()
        batch = [
            Sample(metric, value, labels_of({"name": n}), now)
            for n in (self.names if names is None else names)
        ]
        return self.engine.on_samples(batch)

    def tick(
        self,
        value: float,
        seconds: float = 1.0,
        metric: str = CPU_METRIC,
        names: list[str] | None = None,
        act: bool = True,
    ) -> list[Decision]:
        self.clock.advance(seconds)
        made = self.samples(value, metric, names)
        for decision in made:
            self.made.append(decision)
            if act:
                self.finish(decision)
        return made

    def finish(self, decision: Decision) -> None:
        """What the scaler would do: change the replica set, then report."""
        while len(self.names) < decision.to_replicas:
            self.start()
        while len(self.names) > decision.to_replicas:
            self.stop_newest()
        self.engine.handle(ActionResult(decision, True, "done", self.clock()))

    def moves(self) -> list[tuple[int, int]]:
        return [(d.from_replicas, d.to_replicas) for d in self.made]
