"""The service catalog: what a service is (replicas, definer, guests, policy) and whether
this instance may act on it (scope, pause, fight, owner), kept from the bus alone."""

from __future__ import annotations

from types import MappingProxyType

from ebbflow.bus import Bus
from ebbflow.catalog import EMPTY_KEPT, EXITED_KEPT, ServiceCatalog
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.model import (
    FOUND_EXITED,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    OperatorControls,
    PolicyProblem,
    ServiceFight,
    ServiceKey,
)

from ..conftest import VirtualClock

WEB = ServiceKey("compose", "web", "shop")
COMPOSE = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}


class Owner:
    def __init__(self) -> None:
        self.leading = True
        self.asked: list[ServiceKey] = []

    def acting(self) -> bool:
        return self.leading

    def owns(self, service: ServiceKey) -> bool:
        self.asked.append(service)  # a claim would be made for it
        return self.leading

    def owner(self, service: ServiceKey) -> str:
        return "me" if self.leading else "host-2:4242"


def info(cid: str, labels: dict[str, str], created: float = 0.0, node: str = "") -> ContainerInfo:
    return ContainerInfo(
        cid, f"shop-web-{cid}", "img", MappingProxyType(labels), created=created, node=node
    )


def world(scope: ScopeConfig | None = None) -> tuple[Bus, ServiceCatalog, Owner, VirtualClock]:
    bus, owner, clock = Bus(), Owner(), VirtualClock()
    catalog = ServiceCatalog(bus, RulesConfig(), scope or ScopeConfig(), owner, clock)
    return bus, catalog, owner, clock


def start(
    bus: Bus, *infos: ContainerInfo, kind: ContainerEventKind = ContainerEventKind.START
) -> None:
    for one in infos:
        bus.publish(ContainerEvent(kind, one, 0.0))


def test_replicas_and_their_nodes_follow_the_events() -> None:
    bus, catalog, _, _ = world()
    start(bus, info("a", COMPOSE, node="n1"), info("b", COMPOSE, node="n2"))
    service = catalog.get(WEB)
    assert service is not None and service.count == 2 and service.nodes == {"n1", "n2"}
    assert catalog.service_of("a") == WEB
    assert catalog.container_named("shop-web-b") == (WEB, service.replicas["b"])
    bus.publish(ContainerEvent(ContainerEventKind.DIE, info("b", {}), 1.0))
    assert service.count == 1 and set(service.exited) == {"b"}  # exited, still its own
    bus.publish(ContainerEvent(ContainerEventKind.DESTROY, info("b", {}), 2.0))
    assert service.exited == {} and "b" not in catalog.member_of
    assert catalog.service_of("b") == WEB  # still known to those handling the removal later
    assert catalog.container_named("shop-web-b") is None


def test_the_definer_is_the_founder_never_a_copy_and_a_guest_is_not_counted() -> None:
    bus, catalog, _, _ = world()
    founder = info("a", {**COMPOSE, "aliyun.scale": "2"}, created=10)
    copy = info("b", {**COMPOSE, "aliyun.scale": "2", "ebbflow.created-by": "scale-out"}, 5)
    later = info("c", {**COMPOSE, "aliyun.scale": "9"}, created=20)  # joined by labels
    start(bus, copy, founder, later)
    service = catalog.get(WEB)
    assert service is not None and service.definer is not None
    assert service.definer.id == "a"
    assert service.policy.policy is not None and service.policy.policy.initial_replicas == 2
    # Compose made one: the newest compose-made replica defines it; by-hand ones are guests.
    made = info("d", {**COMPOSE, "com.docker.compose.config-hash": "h1"}, created=1)
    start(bus, made)
    assert service.definer.id == "d"
    assert {g.id for g in service.guests()} == {"a", "c"}
    assert service.counted() == 2  # the copy and compose's own


def test_a_policy_is_parsed_once_per_change_and_its_problem_announced_and_fixed() -> None:
    bus, catalog, _, _ = world()
    problems = bus.subscribe("test", PolicyProblem)
    start(bus, info("a", {**COMPOSE, "aliyun.auto_scaling.max_cpu": "lots"}))
    first = catalog.get(WEB)
    assert first is not None and first.policy.errors
    result = first.policy
    start(bus, info("b", {**COMPOSE, "aliyun.auto_scaling.max_cpu": "lots"}, created=1))
    assert first.policy is result  # the same labels: not parsed again
    bus.publish(ContainerEvent(ContainerEventKind.DESTROY, info("a", {}), 1.0))
    bus.publish(ContainerEvent(ContainerEventKind.DESTROY, info("b", {}), 1.0))
    start(bus, info("c", {**COMPOSE, "aliyun.auto_scaling.max_cpu": "70"}, created=2))
    announced = [problems.get_nowait(), problems.get_nowait()]
    assert isinstance(announced[0], PolicyProblem) and announced[0].errors
    assert isinstance(announced[1], PolicyProblem) and announced[1].errors == ()  # fixed
    assert problems.get_nowait() is None


def test_may_act_names_why_not_scope_pause_fight_and_owner() -> None:
    bus, catalog, owner, _ = world(ScopeConfig(labels={"team": "a"}))
    start(bus, info("a", {**COMPOSE, "team": "b"}))
    assert catalog.not_acting(WEB) == "out of scope: monitored, never acted on"
    bus, catalog, owner, _ = world(ScopeConfig(labels={"team": "a"}))
    start(bus, info("a", {**COMPOSE, "team": "a", "ebbflow.heal.action": "restart"}))
    assert catalog.may_act(WEB)
    bus.publish(OperatorControls(frozenset({"web"}), frozenset(), 1.0))
    assert catalog.not_acting(WEB) == "paused by the operator"
    bus.publish(OperatorControls(frozenset(), frozenset(), 2.0))
    bus.publish(ServiceFight(WEB, "removed twice", 3.0))
    assert catalog.paused(WEB)  # at once, before the operator's controls show it
    bus.publish(ServiceFight(WEB, "resumed", 4.0, fighting=False))
    assert catalog.may_act(WEB)
    owner.leading = False
    assert catalog.not_acting(WEB) == "not the owner: host-2:4242 acts on it"
    assert not catalog.owns(WEB)


def test_a_service_nothing_may_act_on_is_never_claimed() -> None:
    """Plain containers (no policy, probe or healing label) are monitored only: ownership
    is never asked about them, so no claim object is made on the engine for each (found
    with 1,000 plain containers: 1,000 claims, and their engine calls every tick)."""
    bus, catalog, owner, _ = world()
    start(bus, info("a", COMPOSE))
    assert owner.asked == [] and not catalog.owns(WEB) and owner.asked == []
    assert catalog.not_acting(WEB) == "nothing to act on: no policy, probe or healing label"
    start(bus, info("b", {**COMPOSE, "ebbflow.health.url": "http://:8080/"}, created=1.0))
    assert owner.asked == [WEB] and catalog.may_act(WEB)  # a probe: now it is claimed


def test_a_service_found_exited_at_start_is_known_for_a_restore() -> None:
    bus, catalog, _, _ = world()
    bus.publish(
        ContainerEvent(ContainerEventKind.DIE, info("a", {**COMPOSE, "aliyun.scale": "3"}), 0.0,
                       FOUND_EXITED)
    )  # fmt: skip
    service = catalog.get(WEB)
    assert service is not None and service.count == 0 and set(service.exited) == {"a"}
    assert service.policy.policy is not None and service.policy.policy.initial_replicas == 3


def test_memory_is_bounded_empty_services_expire_and_exited_replicas_are_capped() -> None:
    bus, catalog, _, clock = world()
    for n in range(EXITED_KEPT + 10):
        one = info(f"x{n}", COMPOSE)
        start(bus, one)
        bus.publish(ContainerEvent(ContainerEventKind.DIE, one, 0.0))
    service = catalog.get(WEB)
    assert service is not None and len(service.exited) == EXITED_KEPT
    assert len(catalog.member_of) == EXITED_KEPT
    clock.advance(EMPTY_KEPT + 1)
    start(bus, info("other", {"ebbflow.service": "other"}))  # any event expires the old
    assert catalog.get(WEB) is None and all(k != WEB for k in catalog.member_of.values())


def test_a_policy_label_left_out_for_its_size_leaves_the_service_alone_with_a_named_error() -> None:
    bus, catalog, _, _ = world()
    problems = bus.subscribe("test", PolicyProblem)
    too_long = "ebbflow.scale.max_replicas: label of 1048602 bytes, over the 16384-byte bound"
    big = ContainerInfo(
        "a", "shop-web-a", "img", MappingProxyType({**COMPOSE, "aliyun.scale": "2"}),
        label_errors=(too_long + " (docker.limits.max_label_bytes): left out",
                      "com.example.notes: label of 40000 bytes ..."),
    )  # fmt: skip
    start(bus, big)
    service = catalog.get(WEB)
    assert service is not None and service.policy.policy is None
    assert service.policy.errors[0].startswith(too_long)
    assert len(service.policy.errors) == 1  # another tool's label is no error of ebbflow's
    problem = problems.get_nowait()
    assert isinstance(problem, PolicyProblem) and problem.errors == service.policy.errors
