"""The status page's model: each replica's state and reason, each service's numbers and
flags, the nodes, the history; and the pages and the node graph rendered from it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import MappingProxyType

from ebbflow.bus import Bus
from ebbflow.catalog import ServiceCatalog
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    HealingScheduled,
    HealingStep,
    HealthChange,
    OperatorControls,
    Sample,
    SampleBatch,
    ServiceKey,
)
from ebbflow.names import NODE_CPU_PERCENT, TELEMETRY_SOURCE
from ebbflow.nodes import Nodes
from ebbflow.state import DecisionStore
from ebbflow.telemetry import TelemetryInput
from ebbflow.web.page import Pages
from ebbflow.web.topology import topology
from ebbflow.web.view import StatusView
from tests.conftest import VirtualClock

WEB = ServiceKey("compose", "web", "shop")
POLICY = {
    "com.docker.compose.project": "shop",
    "com.docker.compose.service": "web",
    "ebbflow.scale.metric": "cpu",
    "ebbflow.scale.target": "50",
    "ebbflow.scale.min_replicas": "1",
    "ebbflow.scale.max_replicas": "4",
    "ebbflow.scale.cooldown": "30",
    "ebbflow.scale.warmup": "20",
}


def info(cid: str, labels: dict[str, str], started: float, running: bool = True) -> ContainerInfo:
    return ContainerInfo(
        cid * 12, f"shop-web-{cid}", "img", MappingProxyType(labels),
        running=running, created=started, started_at=started,
    )  # fmt: skip


def world(tmp_path: Path) -> tuple[Bus, StatusView, VirtualClock, DecisionStore]:
    bus, clock = Bus(), VirtualClock()
    catalog = ServiceCatalog(bus, RulesConfig(), ScopeConfig(), None, clock)
    nodes = Nodes([DockerHandle("unix:///nonexistent.sock", 1.0)])
    view = StatusView(bus, nodes, clock, "all", "me:1:abc")
    store = DecisionStore(tmp_path / "state.db")
    view.attach(catalog, store)
    return bus, view, clock, store


def event(kind: ContainerEventKind, one: ContainerInfo, when: float, detail: str = "") -> object:
    return ContainerEvent(kind, one, when, detail)


def test_replica_states_follow_the_bus(tmp_path: Path) -> None:
    bus, view, clock, _ = world(tmp_path)
    first = info("a", POLICY, clock.now - 100)
    bus.publish(event(ContainerEventKind.START, first, clock.now))
    second = info("b", POLICY, clock.now)  # just started: within the policy's warm-up
    bus.publish(event(ContainerEventKind.START, second, clock.now))
    states = {r.name: (r.state, r.reason) for r in view.snapshot().services[0].replicas}
    assert states["shop-web-a"] == ("running", "")
    assert states["shop-web-b"][0] == "starting"
    assert states["shop-web-b"][1] == "warming up (20s left)"

    bus.publish(HealthChange(second, WEB, False, "timeout", "no answer in 2s", clock.now))
    replica = view.snapshot().services[0].replicas[1]
    assert (replica.state, replica.reason) == ("unhealthy", "timeout: no answer in 2s")

    version = view.snapshot().version
    dead = dataclasses.replace(first, running=False, finished_at=clock.advance(1))
    bus.publish(event(ContainerEventKind.DIE, dead, clock.now, "exited with code 137 (killed)"))
    assert view.snapshot().version > version
    exited = next(r for r in view.snapshot().services[0].replicas if r.name == "shop-web-a")
    assert (exited.state, exited.reason) == ("exited", "exited with code 137 (killed)")

    plan = HealingScheduled(WEB, first.name, "restart", "exited (code 137)", 1,
                            clock.now + 3, clock.now)  # fmt: skip
    bus.publish(plan)
    clock.advance(1)
    waiting = next(r for r in view.snapshot().services[0].replicas if r.name == "shop-web-a")
    assert (waiting.state, waiting.reason) == (
        "exited", "exited with code 137 (killed); restart #1 in 2s",
    )  # fmt: skip
    step = HealingStep(WEB, first.name, "restart", "exited (code 137)", 1, False,
                       "engine said no", clock.advance(2), next_delay=10.0)  # fmt: skip
    bus.publish(step)
    healing = next(r for r in view.snapshot().services[0].replicas if r.name == "shop-web-a")
    assert healing.state == "healing"
    assert healing.reason == (
        "restart #1 (exited (code 137)) failed: engine said no; next attempt in 10s"
    )
    clock.advance(4)
    healing = next(r for r in view.snapshot().services[0].replicas if r.name == "shop-web-a")
    assert healing.reason.endswith("next attempt in 6s")
    # A step a safety gate refused was never taken: the replica is exited, and says why.
    refused = dataclasses.replace(step, detail="not done: paused", refused=True,
                                  timestamp=clock.advance(1))  # fmt: skip
    bus.publish(refused)
    still = next(r for r in view.snapshot().services[0].replicas if r.name == "shop-web-a")
    assert (still.state, still.reason) == (
        "exited", "exited with code 137 (killed); restart refused: not done: paused",
    )  # fmt: skip
    assert view.history[-1].outcome == "refused: not done: paused"

    back = dataclasses.replace(first, running=True, started_at=clock.advance(10))
    bus.publish(event(ContainerEventKind.START, back, clock.now))
    again = next(r for r in view.snapshot().services[0].replicas if r.name == "shop-web-a")
    assert (again.state, again.reason) == ("starting", "warming up (20s left)")
    clock.advance(20)
    running = next(r for r in view.snapshot().services[0].replicas if r.name == "shop-web-a")
    assert (running.state, running.reason) == ("running", "")


def test_service_numbers_flags_and_history(tmp_path: Path) -> None:
    bus, view, clock, store = world(tmp_path)
    bus.publish(event(ContainerEventKind.START, info("a", POLICY, clock.now - 100), clock.now))
    decision = Decision(WEB, 1, 2, "cpu 90% > target 50%: 1 → 2", clock.now, owner="me:1:abc")
    store.record(decision, ("ok", "started shop-web-2"))
    store.record_desired(WEB, 2, clock.now)
    bus.publish(decision)
    bus.publish(ActionResult(decision, True, "started shop-web-2", clock.advance(1)))
    clock.advance(9)
    service = view.snapshot().services[0]
    assert service.name == "compose:shop/web"
    assert (service.current, service.desired, service.min_replicas, service.max_replicas) == (
        1, 2, 1, 4,
    )  # fmt: skip
    assert service.policy.startswith("cpu[target=50] mode=")
    assert service.last_decision == "cpu 90% > target 50%: 1 → 2"
    assert service.last_outcome == "ok"
    assert round(service.cooldown_up) == 20  # 30 s after the scale-out, 10 s ago
    assert service.cooldown_down == 0.0
    assert service.owner == "this instance (me:1:abc)"
    assert service.flags == []
    history = view.snapshot().history
    assert (history[0].kind, history[0].outcome) == ("decision", "ok: started shop-web-2")

    bus.publish(OperatorControls(frozenset({"web"}), frozenset(), clock.now))
    assert view.snapshot().services[0].flags == ["paused"]


def test_invalid_policy_names_its_errors(tmp_path: Path) -> None:
    bus, view, clock, _ = world(tmp_path)
    bad = POLICY | {"ebbflow.scale.max_replicas": "lots"}
    bus.publish(event(ContainerEventKind.START, info("a", bad, clock.now - 100), clock.now))
    service = view.snapshot().services[0]
    assert service.flags == ["invalid"]
    assert any("max" in error and "lots" in error for error in service.errors), service.errors
    page = Pages().index(view.snapshot())
    assert "lots" in page and 'class="flag invalid"' in page


def test_node_cpu_and_sample_age(tmp_path: Path) -> None:
    _, view, clock, _ = world(tmp_path)
    view.note_batch(SampleBatch("node", clock.now, (Sample(NODE_CPU_PERCENT, 42.0),)))
    clock.advance(3)
    (node,) = view.snapshot().nodes
    assert node.cpu_percent == 42.0
    assert node.sample_age == 3.0
    assert node.engine_up is True
    # An agent heard by a receiver: its age as the receiver reports it.
    telemetry = Sample("ebbflow_remote_write_sender_age_seconds", 2.0, (("sender", "n2"),))
    view.note_batch(SampleBatch(TELEMETRY_SOURCE, clock.now, (telemetry,)))
    n2 = next(n for n in view.snapshot().nodes if n.name == "n2")
    assert (n2.sample_age, n2.engine_up) == (2.0, None)


class _Age:
    name = "receiver"

    def telemetry(self, now: float) -> list[Sample]:
        return [Sample("ebbflow_remote_write_sender_age_seconds", 1.5, (("sender", "n3"),), now)]


def test_own_telemetry_is_not_collection(tmp_path: Path) -> None:
    """ebbflow's own telemetry comes each second whatever collects: it must not make this
    machine look freshly sampled while its collection hangs (it did: the page compared
    the batch's source with a name telemetry does not use). A receiver's sender ages in
    it still give each agent's age."""
    bus, view, clock, _ = world(tmp_path)
    telemetry = TelemetryInput(bus, [_Age()], 1.0, lambda: clock.now)
    view.note_batch(SampleBatch("containers", clock.now, ()))
    for _ in range(10):
        clock.advance(1)
        view.note_batch(SampleBatch(TELEMETRY_SOURCE, clock.now, tuple(telemetry.gather())))
    nodes = {n.name: n for n in view.snapshot().nodes}
    assert nodes["n3"].sample_age == 1.5
    (local,) = [n for name, n in nodes.items() if name != "n3"]
    assert local.sample_age == 10.0  # the containers batch 10 s ago, not the telemetry


def test_hostile_names_are_escaped_everywhere(tmp_path: Path) -> None:
    bus, view, clock, _ = world(tmp_path)
    hostile = "<script>alert(1)</script>"
    bad = "<img src=x onerror=alert(2)>"
    labels = {"ebbflow.service": hostile, "ebbflow.scale.max_replicas": bad}
    one = ContainerInfo("c" * 64, hostile, "img", MappingProxyType(labels), started_at=1.0)
    bus.publish(event(ContainerEventKind.START, one, clock.now))
    status = view.snapshot()
    pages = Pages()
    for html in (pages.index(status), pages.service(status, status.services[0].name, None)):
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    json.dumps(topology(status))  # whatever the names, valid JSON


def test_topology_is_grafanas_node_graph(tmp_path: Path) -> None:
    bus, view, clock, _ = world(tmp_path)
    for cid in "ab":
        bus.publish(event(ContainerEventKind.START, info(cid, POLICY, clock.now - 100), clock.now))
    graph = topology(view.snapshot())
    ids = [n["id"] for n in graph["nodes"]]
    assert len(ids) == len(set(ids)) == 1 + 1 + 2  # the engine, the service, its replicas
    for node in graph["nodes"]:
        assert {"id", "title", "mainstat"} <= set(node)
        arcs = [v for k, v in node.items() if k.startswith("arc__")]
        assert abs(sum(arcs) - 1.0) < 1e-9
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert len(edges) == 3 and all(s in ids and t in ids for s, t in edges)
    service = next(n for n in graph["nodes"] if n["id"] == "service:compose:shop/web")
    assert service["mainstat"] == "2/- replicas"


def test_history_survives_a_restart(tmp_path: Path) -> None:
    _, _, clock, store = world(tmp_path)
    store.record(Decision(WEB, 1, 2, "scale out", clock.now), ("ok", ""))
    store.close()
    _, again, _, _ = world(tmp_path)
    assert [(h.service, h.text, h.outcome) for h in again.snapshot().history] == [
        ("compose:shop/web", "scale out", "ok")
    ]
