"""The rule engine on a virtual clock: step rule, bounds, cooldown, restarts, bad labels."""

import itertools
from pathlib import Path
from types import MappingProxyType

import pytest

from ebbflow.bus import Bus
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
from ebbflow.rules.engine import RuleEngine, decide
from ebbflow.rules.policy import ScalePolicy
from ebbflow.state import DecisionStore

WEB = ServiceKey("compose", "web", "shop")
LABELS = {
    "com.docker.compose.project": "shop",
    "com.docker.compose.service": "web",
    "aliyun.auto_scaling.max_cpu": "40",
    "aliyun.auto_scaling.min_cpu": "10",
    "aliyun.auto_scaling.max_instances": "3",
    "ebbflow.scale.cooldown": "5",
    "ebbflow.scale.window": "2",
}


class Harness:
    def __init__(self, store: DecisionStore, clock, labels=LABELS, dry_run=False) -> None:
        self.bus = Bus()
        self.decisions = self.bus.subscribe("test", Decision, PolicyProblem)
        self.clock = clock
        self.engine = RuleEngine(self.bus, store, clock, dry_run=dry_run)
        self.labels = labels
        self.names: list[str] = []

    def start(self, n: int) -> None:
        for _ in range(n):
            name = f"shop_web_{len(self.names) + 1}"
            self.names.append(name)
            info = ContainerInfo(
                id=name,
                name=name,
                image="i",
                labels=MappingProxyType(self.labels),
                started_at=self.clock(),
            )
            self.engine.on_container(ContainerEvent(ContainerEventKind.START, info, self.clock()))

    def stop_newest(self) -> None:
        name = self.names.pop()
        info = ContainerInfo(id=name, name=name, image="i")
        self.engine.on_container(ContainerEvent(ContainerEventKind.DIE, info, self.clock()))

    def tick(self, cpu: float, seconds: float = 1.0) -> list[Decision]:
        now = self.clock.advance(seconds)
        samples = [
            Sample("ebbflow_container_cpu_percent", cpu, labels_of({"name": n}), now)
            for n in self.names
        ]
        return self.engine.on_samples(samples)

    def finish(self, decision: Decision) -> None:
        """What the scaler would do: report, and change the replica set."""
        self.engine.handle(ActionResult(decision, True, "done", self.clock()))
        while len(self.names) < decision.to_replicas:
            self.start(1)
        while len(self.names) > decision.to_replicas:
            self.stop_newest()


@pytest.fixture
def store(tmp_path: Path) -> DecisionStore:
    return DecisionStore(tmp_path / "state.db")


def test_step_rule() -> None:
    p = ScalePolicy(
        max_cpu=40,
        min_cpu=10,
        max_memory=80,
        min_memory=20,
        step=2,
        min_instances=1,
        max_instances=5,
    )
    assert decide(p, 1, {"cpu": 50}) == (3, "cpu avg 50.0% > max 40% over 30s")
    assert decide(p, 4, {"cpu": 50}) == (5, "cpu avg 50.0% > max 40% over 30s")  # clamped
    assert decide(p, 5, {"cpu": 99}) is None  # at max
    assert decide(p, 3, {"cpu": 5, "memory": 10})[0] == 1  # every min undershot
    assert decide(p, 3, {"cpu": 5, "memory": 50}) is None  # memory still in use
    assert decide(p, 3, {"cpu": 5, "memory": 90})[0] == 5  # any max overshot wins
    assert decide(p, 1, {"cpu": 1}) is None  # at min
    assert decide(p, 7, {"cpu": 20}) == (5, "7 replicas above max_instances 5")
    assert decide(p, 0, {"cpu": 20}) == (1, "0 replicas below min_instances 1")


def test_scales_out_to_max_with_cooldown_then_in(store: DecisionStore, clock) -> None:
    h = Harness(store, clock)
    h.start(1)
    made: list[Decision] = []
    for _ in range(40):
        for d in h.tick(cpu=90.0):
            made.append(d)
            h.finish(d)
    assert [(d.from_replicas, d.to_replicas) for d in made] == [(1, 2), (2, 3)]
    assert made[1].timestamp - made[0].timestamp >= 5
    assert made[0].reason == "shop/web: 1→2, cpu avg 90.0% > max 40% over 2s"
    assert made[0].inputs == {"cpu_avg_percent": 90.0, "replicas": 1}
    for _ in range(40):
        for d in h.tick(cpu=2.0):
            made.append(d)
            h.finish(d)
    assert [(d.from_replicas, d.to_replicas) for d in made[2:]] == [(3, 2), (2, 1)]
    assert all(b.timestamp - a.timestamp >= 5 for a, b in itertools.pairwise(made))


def test_no_second_decision_while_one_is_in_flight(store: DecisionStore, clock) -> None:
    h = Harness(store, clock, labels={**LABELS, "ebbflow.scale.cooldown": "0"})
    h.start(1)
    assert len(h.tick(90.0) + h.tick(90.0)) == 1  # the second tick waits for the outcome
    # a result that never comes does not freeze the service past the deadline
    assert h.tick(90.0, seconds=h.engine.action_deadline + 1) != []


def test_restart_keeps_the_cooldown(store: DecisionStore, tmp_path: Path, clock) -> None:
    first = Harness(store, clock)
    first.start(1)
    (d,) = [d for _ in range(3) for d in first.tick(90.0)]
    first.finish(d)
    store.close()
    # A new process: same state file, fresh memory, containers re-listed.
    reopened = DecisionStore(tmp_path / "state.db")
    second = Harness(reopened, clock)
    second.start(2)
    later = [(clock.now, d) for _ in range(10) for d in second.tick(90.0)]
    assert len(later) == 1
    assert later[0][0] - d.timestamp >= 5


def test_missing_data_never_scales(store: DecisionStore, clock) -> None:
    h = Harness(store, clock)
    h.start(2)
    assert h.engine.on_samples([]) == []
    clock.advance(30)
    # samples of a container outside any policy change nothing
    stray = Sample("ebbflow_container_cpu_percent", 0.0, labels_of({"name": "other"}), clock())
    assert h.engine.on_samples([stray]) == []


def test_dry_run_decides_and_records_but_is_marked(store: DecisionStore, clock) -> None:
    h = Harness(store, clock, dry_run=True)
    h.start(1)
    (d,) = [d for _ in range(3) for d in h.tick(90.0)]
    assert d.dry_run
    assert store.recent()[0].dry_run
    assert store.last_decision_time(WEB, dry_run=False) is None  # live cooldown unaffected


def test_bad_labels_disable_only_that_service(store: DecisionStore, clock) -> None:
    h = Harness(store, clock, labels={**LABELS, "aliyun.auto_scaling.max_cpu": "abc"})
    h.start(1)
    problem = h.decisions.get_nowait()
    assert isinstance(problem, PolicyProblem)
    assert problem.service == WEB
    assert "aliyun.auto_scaling.max_cpu" in problem.errors[0]
    assert [d for _ in range(10) for d in h.tick(99.0)] == []
    metrics = {s.name: s.value for s in h.engine.telemetry(clock())}
    assert metrics["ebbflow_policy_valid"] == 0 and metrics["ebbflow_policy_errors"] == 1
