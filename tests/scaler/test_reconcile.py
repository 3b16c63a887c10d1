"""The desired replica count of plain-engine services, on a virtual clock: when it acts
(only after the grace period, only while nothing else acts on the service), what it aims
at (the declared count, else ebbflow's last decision), and what it leaves alone."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from ebbflow.bus import Bus, Subscription
from ebbflow.config import ReconcileConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    EngineConnection,
    OperatorControls,
    ServiceFight,
    ServiceKey,
    ServiceRetired,
)
from ebbflow.nodes import Nodes
from ebbflow.scaler.reconcile import Reconciler
from ebbflow.state import DecisionStore
from tests.conftest import VirtualClock

from .fakes import RecordingActuator, context

WEB = ServiceKey("compose", "web", "shop")
SCALE_3 = {"aliyun.scale": "3"}


class World:
    """A reconciler on two nodes, fed events by hand, its decisions caught on the bus."""

    def __init__(self, tmp_path: Path, dry_run: bool = False) -> None:
        self.clock = VirtualClock(1000.0)
        self.bus = Bus()
        self.nodes = Nodes(DockerHandle(f"tcp://127.0.0.1:9/{n}", node=n) for n in ("n1", "n2"))
        self.store = DecisionStore(tmp_path / "state.db")
        self.healing: set[ServiceKey] = set()
        ctx = context(self.bus, self.store, self.clock, dry_run=dry_run, nodes=self.nodes)
        self.catalog = ctx.catalog
        self.reconciler = Reconciler(
            ctx,
            [RecordingActuator()],
            ReconcileConfig(grace=10),
            healing_under_way=lambda key: key in self.healing,
        )
        self.events = 0
        for node in ("", "n1", "n2"):  # discovery announces each engine it listed
            self.bus.publish(EngineConnection(node, True, 1, "connected", self.clock()))

    def start(self, count: int, labels: dict[str, str] | None = None, node: str = "n1") -> None:
        for _ in range(count):
            self.events += 1
            info = ContainerInfo(
                f"id{self.events}",
                f"shop-web-{self.events}",
                "img",
                MappingProxyType(
                    {
                        "com.docker.compose.project": "shop",
                        "com.docker.compose.service": "web",
                        **(SCALE_3 if labels is None else labels),
                    }
                ),
                node=node,
            )
            self.feed(ContainerEvent(ContainerEventKind.START, info, self.clock()))

    def die(self, cid: str) -> None:
        info = ContainerInfo(cid, "", "img")
        self.feed(ContainerEvent(ContainerEventKind.DIE, info, self.clock()))

    def feed(self, event: object) -> None:
        """As live: the catalog observes the event on the bus, then the reconciler has it."""
        self.bus.publish(event)  # type: ignore[arg-type]
        self.reconciler.handle(event)

    def at(self, now: float) -> list[Decision]:
        self.clock.now = 1000.0 + now
        return self.reconciler.check()

    def done(self, decision: Decision, ok: bool = True) -> None:
        self.reconciler.handle(ActionResult(decision, ok, "done", self.clock()))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_service_short_of_its_declared_count_is_brought_up_after_the_grace_period(
    world: World,
) -> None:
    world.start(1)
    assert world.at(0) == []  # the grace period starts
    assert world.at(9.9) == []
    (decision,) = world.at(10)
    assert (decision.service, decision.from_replicas, decision.to_replicas) == (WEB, 1, 3)
    assert decision.origin == "reconcile" and not decision.dry_run
    assert "desired 3 (declared)" in decision.reason
    (stored,) = world.store.recent()
    assert (stored.to_replicas, stored.origin) == (3, "reconcile")
    # It starts no policy cooldown.
    assert world.store.last_decision_time(WEB, dry_run=False) is None


def test_one_decision_at_a_time_and_a_failed_one_is_tried_again_later(
    world: World,
) -> None:
    world.start(1)
    world.at(0)
    (decision,) = world.at(10)
    assert world.at(100) == []  # its result has not come
    world.done(decision, ok=False)  # e.g. no running replica to clone
    assert world.at(115) == []
    assert world.at(119.9) == []  # the grace period, doubled
    (again,) = world.at(120)
    world.done(again)
    world.start(2)
    assert world.at(500) == []  # at its count: nothing to do
    assert world.reconciler.services[WEB].tries == 0


def test_a_replica_that_dies_waits_for_healing_then_is_replaced(world: World) -> None:
    world.start(3)
    assert world.at(0) == []
    world.healing.add(WEB)
    world.die("id2")
    assert world.at(1) == []
    assert world.at(60) == []  # healing's backoff: its step may bring it back
    world.healing.clear()  # healing gave up on it
    assert world.at(65) == []
    (decision,) = world.at(75)
    assert (decision.from_replicas, decision.to_replicas) == (2, 3)


def test_a_surplus_is_removed(world: World) -> None:
    world.start(4)
    world.at(0)
    (decision,) = world.at(10)
    assert (decision.from_replicas, decision.to_replicas, decision.direction) == (4, 3, "in")


def test_replicas_on_a_node_at_fault_do_not_count(world: World) -> None:
    world.start(2)
    world.start(1, node="n2")
    assert world.at(0) == [] and world.at(20) == []
    world.nodes.set_fault("n2", "engine", "engine not answering")
    world.at(21)
    (decision,) = world.at(31)
    assert (decision.from_replicas, decision.to_replicas) == (2, 3)


def test_a_leftover_to_remove_holds_it(world: World) -> None:
    world.store.record_migration(WEB, "old", "shop-web-9", "n2", "moved", 0.0)
    world.start(4)  # the migrated one and the original, back on its node
    world.at(0)
    assert world.at(50) == []
    world.store.leftover_removed("old", 0.0)
    world.at(51)
    assert len(world.at(61)) == 1


def test_ebbflow_s_last_decision_outranks_the_declared_count_until_the_label_changes(
    world: World,
) -> None:
    policy = {**SCALE_3, "ebbflow.scale.metric": "cpu", "ebbflow.scale.target": "50"}
    world.start(3, {**policy, "com.docker.compose.config-hash": "v1"})
    world.done(Decision(WEB, 3, 5, "cpu high", world.clock()))
    world.at(0)
    (decision,) = world.at(10)
    assert (decision.from_replicas, decision.to_replicas) == (3, 5)
    assert "ebbflow's last decision" in decision.reason
    world.done(decision)
    redeployed = {**policy, "aliyun.scale": "2", "com.docker.compose.config-hash": "v2"}
    world.start(1, redeployed)  # compose redeployed it with a new count
    assert world.at(15) == []
    (decision,) = world.at(20)  # its grace period counts from the new replica
    assert (decision.from_replicas, decision.to_replicas) == (4, 2)
    assert "desired 2 (declared)" in decision.reason


def test_a_decision_recorded_before_a_restart_is_the_desired_count(tmp_path: Path) -> None:
    first = World(tmp_path)
    policy = {**SCALE_3, "ebbflow.scale.metric": "cpu", "ebbflow.scale.target": "50"}
    decision = Decision(WEB, 3, 6, "cpu high", 900.0)
    first.store.record(decision)
    first.store.record_outcome(decision, True, "started 3")
    restarted = World(tmp_path)
    restarted.start(3, policy)
    restarted.at(0)
    (again,) = restarted.at(10)
    assert again.to_replicas == 6


def test_a_fixed_count_ignores_decisions_of_an_older_policy(tmp_path: Path) -> None:
    first = World(tmp_path)
    decision = Decision(WEB, 3, 6, "cpu high", 900.0)
    first.store.record(decision)
    first.store.record_outcome(decision, True, "started 3")
    restarted = World(tmp_path)
    restarted.start(3)  # aliyun.scale=3 alone now
    restarted.at(0)
    assert restarted.at(60) == []


def test_a_decided_count_is_kept_within_the_policy_s_bounds(world: World) -> None:
    policy = {"ebbflow.scale.metric": "cpu", "ebbflow.scale.target": "50"}
    world.start(2, {**policy, "ebbflow.scale.max_replicas": "4"})
    world.done(Decision(WEB, 2, 8, "an older policy's", world.clock()))
    world.at(0)
    (decision,) = world.at(10)
    assert decision.to_replicas == 4


@pytest.mark.parametrize(
    "labels",
    [
        {},  # no policy: no desired count
        {"ebbflow.scale.metric": "cpu", "ebbflow.scale.target": "50"},  # nothing declared yet
        {"aliyun.scale": "three"},  # a bad policy is left alone
    ],
)
def test_services_without_a_desired_count_are_left_alone(
    world: World, labels: dict[str, str]
) -> None:
    world.start(1, labels)
    world.at(0)
    assert world.at(60) == []


def test_swarm_tasks_and_lone_containers_are_not_reconciled(world: World) -> None:
    for cid, labels in (
        ("t1", {"com.docker.swarm.service.name": "api", **SCALE_3}),
        ("c1", SCALE_3),
    ):
        info = ContainerInfo(cid, cid, "img", MappingProxyType(labels), node="n1")
        world.feed(ContainerEvent(ContainerEventKind.START, info, 0.0))
    world.at(0)
    assert world.at(60) == [] and world.reconciler.services == {}


def test_a_dry_run_reports_each_mismatch_once(tmp_path: Path) -> None:
    world = World(tmp_path, dry_run=True)
    world.start(1)
    world.at(0)
    (decision,) = world.at(10)
    assert decision.dry_run
    world.done(decision)  # "would scale": nothing changed
    assert world.at(100) == [] and world.at(1000) == []
    world.die("id1")
    world.at(1001)
    (again,) = world.at(1011)
    assert (again.from_replicas, again.to_replicas) == (0, 3)


def test_the_desired_count_is_a_metric(world: World) -> None:
    world.start(1)
    (sample,) = [
        s for s in world.reconciler.telemetry(0.0) if s.name == "ebbflow_service_replicas_desired"
    ]
    assert (sample.value, sample.label("service")) == (3, "shop/web")


def replica(cid: str, configuration: str, made_by_ebbflow: bool = False) -> ContainerInfo:
    labels = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
    labels |= {**SCALE_3, "com.docker.compose.config-hash": configuration}
    if made_by_ebbflow:
        labels["ebbflow.created-by"] = "scale-out"
    return ContainerInfo(
        cid, f"shop-web-{cid}", "img", MappingProxyType(labels), configuration=configuration
    )


def event(world: World, kind: ContainerEventKind, info: ContainerInfo) -> None:
    world.feed(ContainerEvent(kind, info, world.clock()))


def test_a_removal_by_hand_is_held_then_read_as_a_manual_scale_in(world: World) -> None:
    for cid, ours in (("a", False), ("b", True), ("c", True)):
        event(world, ContainerEventKind.START, replica(cid, "v1", ours))
    world.at(0)
    event(world, ContainerEventKind.STOP, replica("c", "v1", True))
    event(world, ContainerEventKind.DESTROY, replica("c", "v1", True))
    assert world.at(29) == []  # within the redeploy window: nothing re-added, nothing read
    assert world.store.last_carried_out(WEB) is None
    assert world.at(30) == []  # read: a manual scale-in, followed
    assert world.store.last_carried_out(WEB) == (2, "operator")
    assert world.at(100) == []


def test_a_new_configuration_within_the_window_is_a_redeploy_and_rolls_the_copies(
    world: World,
) -> None:
    for cid, ours in (("a", False), ("b", True), ("c", True)):
        event(world, ContainerEventKind.START, replica(cid, "v1", ours))
    world.at(0)
    for kind in (ContainerEventKind.STOP, ContainerEventKind.DESTROY):
        event(world, kind, replica("c", "v1", True))  # compose's downscale
        event(world, kind, replica("a", "v1"))  # and its recreate
    event(world, ContainerEventKind.START, replica("a2", "v2"))  # the new configuration
    assert world.store.last_carried_out(WEB) is None  # no manual scale-in recorded
    world.at(1)
    (decision,) = world.at(11)  # the grace period: back to the count it had
    assert (decision.from_replicas, decision.to_replicas, decision.origin) == (2, 3, "reconcile")
    world.done(decision)
    event(world, ContainerEventKind.START, replica("d", "v2", True))
    (roll,) = world.at(12)  # b is a copy of v1: rolled, the count unchanged
    assert (roll.from_replicas, roll.to_replicas, roll.origin) == (3, 3, "rollover")
    assert "replace shop-web-b (configuration v1)" in roll.reason
    assert world.at(13) == []  # one at a time


def drain(subscription: Subscription) -> list[ServiceFight]:
    events = []
    while (event := subscription.get_nowait()) is not None:
        assert isinstance(event, ServiceFight)
        events.append(event)
    return events


def test_a_fight_pauses_the_service_and_ends_when_the_operator_resumes_it(
    world: World,
) -> None:
    fights = world.bus.subscribe("test", ServiceFight)
    labels = {"aliyun.scale": "2", "ebbflow.scale.min_replicas": "2"}
    world.start(1, labels)

    def compose_removes_what_ebbflow_adds(short_at: float) -> None:
        assert world.at(short_at) == []  # short of its count: the grace period starts
        at = short_at + 10
        (decision,) = world.at(at)  # ebbflow adds the second
        assert (decision.from_replicas, decision.to_replicas) == (1, 2)
        world.done(decision)
        ours = ContainerInfo(
            f"ours{at}",
            "shop-web-2",
            "img",
            MappingProxyType(
                {
                    "com.docker.compose.project": "shop",
                    "com.docker.compose.service": "web",
                    **labels,
                    "ebbflow.created-by": "scale-out",
                }
            ),
        )
        event(world, ContainerEventKind.START, ours)
        world.at(at + 1)
        event(world, ContainerEventKind.STOP, ours)
        event(world, ContainerEventKind.DESTROY, ours)

    compose_removes_what_ebbflow_adds(0)
    compose_removes_what_ebbflow_adds(60)  # read after the redeploy window: short again
    # The same name, created again: removed within a minute of its creation, twice.
    assert world.at(120) == []
    assert [(s, p) for s, p, _ in world.store.controls()] == [("compose:shop/web", True)]
    (fight,) = drain(fights)
    assert (fight.service, fight.fighting) == (WEB, True)
    # An announcement from before the pause ends nothing; the resume after it does.
    world.feed(OperatorControls(frozenset(), frozenset(), world.clock()))
    assert drain(fights) == []
    paused = frozenset({"compose:shop/web"})
    world.feed(OperatorControls(paused, frozenset(), world.clock()))
    world.feed(OperatorControls(frozenset(), frozenset(), world.clock()))
    (over,) = drain(fights)
    assert (over.service, over.fighting, over.reason) == (WEB, False, "resumed by the operator")


def test_stops_seen_as_the_engine_goes_away_are_an_outage_then_restored(world: World) -> None:
    """An engine's shutdown stops every container, then its stream ends: no operator did
    anything, so the service is neither scaled in nor retired, and comes back to its count."""
    retired = world.bus.subscribe("test", ServiceRetired)
    world.start(3)
    world.at(0)
    for n in (1, 2, 3):
        info = ContainerInfo(f"id{n}", f"shop-web-{n}", "img", node="n1")
        world.feed(ContainerEvent(ContainerEventKind.DIE, info, world.clock(), "exited (137)"))
        world.feed(ContainerEvent(ContainerEventKind.STOP, info, world.clock()))
    world.feed(EngineConnection("n1", False, 1, "event stream ended", world.clock()))
    assert world.at(5) == [] and world.at(60) == []  # nothing is decided while it is away
    (outage,) = world.store.recent()
    assert (outage.from_replicas, outage.to_replicas, outage.origin, outage.outcome) == (
        3, 0, "outage", "outage",
    )  # fmt: skip
    assert "an outage, not an operator; desired count stays 3" in outage.reason
    world.feed(EngineConnection("n1", True, 2, "connected", world.clock()))
    assert world.at(61) == []  # the grace period starts now
    (restore,) = world.at(71)
    assert (restore.from_replicas, restore.to_replicas, restore.origin) == (0, 3, "reconcile")
    assert world.store.last_carried_out(WEB) is None  # no operator's count was recorded
    assert retired.get_nowait() is None


def test_a_stop_read_after_a_reconnect_is_no_evidence_either(world: World) -> None:
    """A loss the reconciler never heard of (the session moved on): no intent."""
    world.start(3)
    world.at(0)
    info = ContainerInfo("id3", "shop-web-3", "img", node="n1")
    world.feed(ContainerEvent(ContainerEventKind.DIE, info, world.clock()))
    world.feed(ContainerEvent(ContainerEventKind.STOP, info, world.clock()))
    world.bus.publish(EngineConnection("n1", True, 2, "connected", world.clock()))  # catalog only
    world.at(1)
    (restore,) = world.at(11)
    assert (restore.from_replicas, restore.to_replicas) == (2, 3)
    assert world.store.last_carried_out(WEB) is None
