"""The rule engine on a virtual clock."""

import itertools
import logging
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebbflow.config import ConfiguredPolicy, PolicySelector, RulesConfig
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    EngineConnection,
    PolicyProblem,
    Sample,
    SampleBatch,
    labels_of,
)
from ebbflow.names import TELEMETRY_SOURCE
from ebbflow.policy import CPU_METRIC, MetricRule
from ebbflow.rules.engine import CONVERGE_DEADLINE
from ebbflow.rules.strategies.proportional import recommend_proportional
from ebbflow.rules.strategies.step import recommend_step
from ebbflow.state import DecisionStore

from ..conftest import VirtualClock
from .harness import WEB, Harness

STEP = {
    "aliyun.auto_scaling.max_cpu": "40",
    "aliyun.auto_scaling.min_cpu": "10",
    "aliyun.auto_scaling.max_instances": "3",
    "ebbflow.scale.cooldown": "5",
    "ebbflow.scale.window": "2",
}
PROPORTIONAL = {
    "ebbflow.scale.metric": "cpu",
    "ebbflow.scale.target": "50",
    "ebbflow.scale.window": "1",
    "ebbflow.scale.cooldown": "0",
    "ebbflow.scale.max_replicas": "20",
}


@pytest.fixture
def store(tmp_path: Path) -> DecisionStore:
    return DecisionStore(tmp_path / "state.db")


# -- the recommendation rules alone ------------------------------------------------------
def test_step_recommendation() -> None:
    rule = MetricRule(id="cpu", metric="cpu", max=40, min=10)
    assert recommend_step(rule, 50, 2, 2) == (4, "cpu avg 50.0% > max 40.0%")
    assert recommend_step(rule, 5, 2, 1) == (1, "cpu avg 5.0% < min 10.0%")
    assert recommend_step(rule, 20, 2, 1)[0] == 2


def test_proportional_recommendation_and_tolerance() -> None:
    rule = MetricRule(id="cpu", metric="cpu", target=60)
    # desired = ceil(current x value / target): 2 x 91 / 60 = 3.03 → 4
    assert recommend_proportional(rule, 91, 2 * 91 / 60, 2, 2, 0.1) == (
        4,
        "cpu avg 91.0% > target 60.0%",
    )
    assert recommend_proportional(rule, 30, 4 * 30 / 60, 4, 4, 0.1)[0] == 2
    # within the 10 % tolerance nothing moves, in either direction
    assert recommend_proportional(rule, 65, 2 * 65 / 60, 2, 2, 0.1)[0] == 2
    assert recommend_proportional(rule, 55, 2 * 55 / 60, 2, 2, 0.1)[0] == 2
    assert recommend_proportional(rule, 67, 2 * 67 / 60, 2, 2, 0.1)[0] == 3


# -- modes -------------------------------------------------------------------------------
def test_step_mode_out_with_cooldown_then_in(store: DecisionStore, clock: VirtualClock) -> None:
    h = Harness(store, clock, STEP)
    h.start()
    for _ in range(40):
        h.tick(90.0)
    assert h.moves() == [(1, 2), (2, 3)]
    assert h.made[1].timestamp - h.made[0].timestamp >= 5
    assert h.made[0].reason == "web: 1→2, cpu avg 90.0% > max 40.0% over 2s"
    assert h.made[0].inputs["cpu_avg"] == 90.0 and h.made[0].inputs["replicas"] == 1
    for _ in range(40):
        h.tick(2.0)
    assert h.moves()[2:] == [(3, 2), (2, 1)]
    assert all(b.timestamp - a.timestamp >= 5 for a, b in itertools.pairwise(h.made))


def test_proportional_mode_jumps_to_the_needed_count(
    store: DecisionStore, clock: VirtualClock
) -> None:
    h = Harness(store, clock, PROPORTIONAL)
    h.start(2)
    h.tick(90.0)  # 2 x 90 / 50 = 3.6
    assert h.moves() == [(2, 4)]
    assert h.made[0].reason == "web: 2→4, cpu avg 90.0% > target 50.0% over 1s"


def test_predictive_mode_scales_ahead_of_a_rising_trend(
    store: DecisionStore, clock: VirtualClock
) -> None:
    labels = {
        **PROPORTIONAL,
        "ebbflow.scale.mode": "predictive",
        "ebbflow.scale.window": "10",
        "ebbflow.scale.startup": "60",
    }
    predictive, proportional = (
        Harness(store, clock, labels),
        Harness(
            DecisionStore(":memory:"),
            VirtualClock(),
            {**labels, "ebbflow.scale.mode": "proportional"},
        ),
    )
    for h in (predictive, proportional):
        h.start(4)
        for cpu in range(40, 56, 2):  # +0.08 cores every 10 s on 4 replicas; target 50 %
            h.tick(cpu, seconds=10, act=False)
    # proportional waits for the tolerance (57.5 %) to be passed; predictive reads the
    # line one start-up (60 s) ahead, at 52 %: 4 x 52 / 50 + 0.016/s x 60 s = 5.12
    assert proportional.moves() == []
    assert predictive.moves() == [(4, 6)]
    assert "forecast 5.1 replicas in 60s" in predictive.made[0].reason


def test_noise_is_not_a_trend(store: DecisionStore, clock: VirtualClock) -> None:
    """A slope within 3 standard errors of 0 is not followed, however steep it looks."""
    labels = {**PROPORTIONAL, "ebbflow.scale.window": "10", "ebbflow.scale.startup": "60"}
    h = Harness(store, clock, labels)
    h.start(4)
    for cpu in [40, 52, 38, 50, 41, 53, 39, 51, 42, 54, 40, 52] * 2:  # rising a little
        h.tick(cpu, seconds=5, act=False)
    assert h.made == []


def test_predictive_is_never_below_proportional(store: DecisionStore, clock: VirtualClock) -> None:
    labels = {**PROPORTIONAL, "ebbflow.scale.mode": "predictive", "ebbflow.scale.window": "5"}
    h = Harness(store, clock, labels)
    h.start(2)
    for cpu in (100, 95, 90):  # a falling trend, but still far above target
        h.tick(cpu, seconds=2, act=False)  # the window (5 s) is full at the third
    assert h.made[0].to_replicas >= 4  # 2 x 100 / 50


def test_startup_time_is_learned(store: DecisionStore, clock: VirtualClock) -> None:
    h = Harness(store, clock, PROPORTIONAL)
    h.start(1)
    (d,) = h.tick(90.0, act=False)  # 1 x 90 / 50 → 2
    h.finish(d)  # a new replica appears at once, but sends no sample yet
    new = h.names[-1]
    for _ in range(7):
        h.tick(60.0, names=h.names[:1], act=False)
    h.tick(60.0, names=[new], seconds=0, act=False)  # first sample 7 s after the decision
    learned = h.engine.services[WEB].startup
    assert learned is not None and (learned.seconds, learned.seen) == (pytest.approx(7.0), 1)
    assert store.startup(WEB) == learned  # kept for a restart and for `ebbflow explain`
    (d,) = h.tick(90.0, names=h.names, act=False)  # 2 x 90 / 50 → 4
    assert d.inputs["startup"] == 7.0 and d.inputs["startup_learned"] == 1
    h.finish(d)
    h.tick(60.0, names=h.names[:2] + h.names[-1:], seconds=3, act=False)  # 3 s this time
    learned = h.engine.services[WEB].startup
    assert learned is not None
    assert (learned.seconds, learned.last_seconds, learned.seen) == (5.0, 3.0, 2)
    # a restart reads it back before it has seen a start-up of its own
    again = Harness(store, VirtualClock(), PROPORTIONAL)
    again.start(1)
    assert again.engine.services[WEB].startup == learned


# -- safety ------------------------------------------------------------------------------
def test_starting_replicas_are_left_out_of_averages(
    store: DecisionStore, clock: VirtualClock
) -> None:
    labels = {**STEP, "ebbflow.scale.warmup": "30", "aliyun.auto_scaling.max_instances": "5"}
    h = Harness(store, clock, labels)
    h.start(1)
    clock.advance(31)
    h.tick(20.0)  # within bounds
    h.start(1)  # a new replica still in its warm-up: its 100 % must not count
    for _ in range(5):
        h.samples(100.0, names=h.names[1:])
        h.tick(20.0, names=h.names[:1])
    assert h.made == []
    assert h.engine.services[WEB].averages["cpu"] == 20.0


def test_a_replica_with_a_probe_waits_for_its_first_success(
    store: DecisionStore, clock: VirtualClock
) -> None:
    h = Harness(store, clock, {**STEP, "aliyun.probe.url": "http://container:80/"})
    h.start(1)
    for _ in range(5):
        h.tick(90.0)
    assert h.made == []  # no healthy sample yet: not ready, no average
    h.engine.on_samples([Sample("probe_success", 1.0, labels_of({"name": h.names[0]}), clock())])
    h.tick(90.0)
    assert h.moves() == [(1, 2)]


def test_scale_in_is_stabilised(store: DecisionStore, clock: VirtualClock) -> None:
    labels = {**PROPORTIONAL, "ebbflow.scale.stabilization": "20"}
    h = Harness(store, clock, labels)
    h.start(4)
    h.tick(50.0)  # at target: 4 recommended
    at_target = clock()
    for _ in range(19):
        h.tick(10.0)  # 4 x 10 / 50 -> 1, but 4 was recommended within 20 s
    assert h.made == []
    for _ in range(3):
        h.tick(10.0)
    assert h.made[0].timestamp - at_target >= 20
    # not to 1: a scale-in keeps what the last 3 minutes' peak load needed at 100 %,
    # 2 cores (4 replicas at 50 %)
    assert h.moves()[-1][1] == 2


def test_cooldowns_per_direction(store: DecisionStore, clock: VirtualClock) -> None:
    labels = {
        **STEP,
        "aliyun.auto_scaling.max_instances": "10",
        "ebbflow.scale.cooldown_up": "2",
        "ebbflow.scale.cooldown_down": "30",
    }
    h = Harness(store, clock, labels)
    h.start(1)
    for _ in range(6):
        h.tick(90.0)
    outs = [d.timestamp for d in h.made]
    assert len(outs) >= 2 and all(b - a >= 2 for a, b in itertools.pairwise(outs))
    assert min(b - a for a, b in itertools.pairwise(outs)) < 5  # up is not held by down's 30 s
    h.made.clear()
    for _ in range(60):
        h.tick(1.0)
    ins = [d.timestamp for d in h.made if d.direction == "in"]
    assert len(ins) >= 2 and all(b - a >= 30 for a, b in itertools.pairwise(ins))


def test_rate_limit_per_direction(store: DecisionStore, clock: VirtualClock) -> None:
    labels = {
        **PROPORTIONAL,
        "ebbflow.scale.target": "25",
        "ebbflow.scale.max_up": "2",
        "ebbflow.scale.max_down": "1",
    }
    h = Harness(store, clock, labels)
    h.start(2)
    h.tick(100.0)  # 2 x 100 / 25 = 8 wanted, 2 more at a time allowed
    assert h.moves() == [(2, 4)]
    clock.advance(60)
    h.tick(1.0)  # 1 wanted, 1 fewer at a time allowed
    assert h.moves()[1] == (4, 3)


def test_missing_data_hold_never_acts(store: DecisionStore, clock: VirtualClock) -> None:
    labels = {**STEP, "ebbflow.scale.queue.metric": "queue_depth", "ebbflow.scale.queue.max": "100"}
    h = Harness(store, clock, labels)
    h.start(2)
    for _ in range(10):
        h.tick(99.0)  # cpu high, but the queue metric never arrives: hold
    assert h.made == []


def test_missing_data_scale_up_only(store: DecisionStore, clock: VirtualClock) -> None:
    labels = {
        **STEP,
        "ebbflow.scale.queue.metric": "queue_depth",
        "ebbflow.scale.queue.max": "100",
        "ebbflow.scale.on_missing": "scale_up_only",
        "aliyun.auto_scaling.max_instances": "5",
    }
    h = Harness(store, clock, labels)
    h.start(2)
    h.tick(99.0, seconds=2)  # a full window (2 s)
    assert h.moves() == [(2, 3)]  # cpu may scale up without the queue metric
    h.made.clear()
    for _ in range(30):
        h.tick(1.0)  # but never in
    assert h.made == []


def test_missing_data_fallback_raises_to_n(store: DecisionStore, clock: VirtualClock) -> None:
    labels = {
        **STEP,
        "ebbflow.scale.queue.metric": "queue_depth",
        "ebbflow.scale.queue.max": "100",
        "ebbflow.scale.on_missing": "fallback:4",
        "aliyun.auto_scaling.max_instances": "5",
    }
    h = Harness(store, clock, labels)
    h.start(2)
    h.tick(20.0, seconds=2)  # a full window (2 s)
    assert h.moves() == [(2, 4)]
    assert "queue_depth missing, fallback 4" in h.made[0].reason


def test_stale_data_never_scales_in(store: DecisionStore, clock: VirtualClock) -> None:
    h = Harness(store, clock, {**STEP, "aliyun.auto_scaling.max_instances": "5"})
    h.start(3)
    h.tick(20.0)
    clock.advance(60)  # every sample is now stale
    assert h.engine.evaluate(h.engine.services[WEB]) is None


@pytest.mark.parametrize("runs", [False, True])
def test_a_batch_that_says_its_containers_runs_is_read_as_one_that_does_not(
    store: DecisionStore, clock: VirtualClock, runs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = {
        **PROPORTIONAL,
        "ebbflow.scale.queue.metric": "queue_depth",
        "ebbflow.scale.queue.target": "10",
    }
    h = Harness(store, clock, labels)
    h.start(2)
    unread = ContainerInfo(id="other_1", name="other_1", image="i", started_at=clock())
    h.event(ContainerEvent(ContainerEventKind.START, unread, clock()))  # no policy
    asked = []
    monkeypatch.setattr(h.engine, "_identity", lambda s: asked.append(s) or identity(s))
    identity = type(h.engine)._identity.__get__(h.engine)
    clock.advance(1)
    now = clock()

    def of(name: str, *extra: tuple[str, str]) -> list[Sample]:
        pairs = labels_of({"name": name, **dict(extra)})
        return [Sample(CPU_METRIC, 60.0, pairs, now), Sample("container_x", 1.0, pairs, now)]

    samples = (
        *of(h.names[0]),
        *of("other_1"),
        *of(h.names[1]),
        # a container that is no replica, whose samples name a service (exported labels)
        Sample("queue_depth", 70.0, labels_of({"name": "job_1", "service": "shop/web"}), now),
        Sample("container_memory_rss", 1.0, (), now),  # the host's: about no container
    )
    said = ((h.names[0], 2), ("other_1", 4), (h.names[1], 6), ("job_1", 7)) if runs else ()
    made = h.engine.handle(SampleBatch("containers", now, samples, containers=said))
    assert [(d.from_replicas, d.to_replicas) for d in made] == [(2, 6)]
    assert made[0].inputs["queue_recommends"] == 7 and made[0].inputs["cpu_recommends"] == 3
    state = h.engine.services[WEB]
    assert all(state.replicas[n].latest[CPU_METRIC][1] == 60.0 for n in h.names)
    # asked once per labels tuple without runs; with them, only about what no run is of a
    # replica (the one that is no replica, and the host's sample)
    assert len(asked) == (5 if not runs else 2)


def test_the_largest_recommendation_wins(store: DecisionStore, clock: VirtualClock) -> None:
    labels = {
        **PROPORTIONAL,
        "ebbflow.scale.queue.metric": "queue_depth",
        "ebbflow.scale.queue.target": "10",
    }
    h = Harness(store, clock, labels)
    h.start(2)
    clock.advance(1)
    service_wide = Sample("queue_depth", 70.0, labels_of({"service": "shop/web"}), clock())
    h.engine.on_samples([service_wide])  # 70 / 10 per replica → 7
    h.tick(60.0)  # cpu alone: 2 x 60 / 50 → 3
    assert h.moves() == [(2, 6)]  # 7 wanted; the default up-limit is max(4, 100 %)
    assert "queue_depth" in h.made[0].reason
    assert h.made[0].inputs["queue_recommends"] == 7
    assert h.made[0].inputs["cpu_recommends"] == 3


def test_restart_keeps_the_cooldown(store: DecisionStore, tmp_path: Path, clock) -> None:
    first = Harness(store, clock, STEP)
    first.start(1)
    for _ in range(3):
        first.tick(90.0)
    (d,) = first.made
    store.close()
    second = Harness(DecisionStore(tmp_path / "state.db"), clock, STEP)
    second.start(2)
    for _ in range(10):
        second.tick(90.0)
    assert len(second.made) == 1
    assert second.made[0].timestamp - d.timestamp >= 5


def test_a_new_owner_takes_the_cooldown_from_the_newest_replicas_creation(
    store: DecisionStore, clock: VirtualClock
) -> None:
    """A decider that never scaled the service (it was another's partition) and finds
    several replicas: the newest was a scale-out, so its cooldown holds from that creation,
    read off the engine, not from another decider's state."""
    labels = {**STEP, "ebbflow.scale.cooldown": "20"}
    h = Harness(store, clock, labels)
    h.start(1)
    clock.advance(60)
    h.start(1)  # created now, after the first: the previous owner's scale-out
    created = clock()
    for _ in range(40):
        h.tick(90.0)
    assert h.made and h.made[0].timestamp - created >= 20
    deployed = Harness(DecisionStore(":memory:"), clock, labels)
    deployed.start(2)  # a deployment's replicas, created together: no scale-out to wait for
    started = clock()
    for _ in range(10):
        deployed.tick(90.0)
    assert deployed.made and deployed.made[0].timestamp - started < 5


def test_a_replica_without_a_value_of_the_policys_metric_holds_a_scale_in(
    store: DecisionStore, clock: VirtualClock
) -> None:
    """A replica's first collection cycle has no CPU rate yet (only its memory): the idle
    others' average is the service's only in part, and never scales it in. Found on the
    lab, where a decider scaled a service in on its two idle replicas' first samples
    while the third burned."""
    h = Harness(store, clock, {**STEP, "aliyun.auto_scaling.max_instances": "5"})
    busy = h.start(3)[0]
    idle = [n for n in h.names if n != busy]
    for _ in range(10):
        clock.advance(1.0)
        h.samples(0.0, "ebbflow_container_memory_percent", [busy])
        assert h.samples(1.0, names=idle) == []
    state = h.engine.services[WEB]
    policy = h.catalog.get(WEB).policy.policy  # type: ignore[union-attr]
    assert state.partly_seen(policy, clock(), h.catalog.down) == 1  # type: ignore[arg-type]
    for _ in range(10):  # its rate arrives (idle too): now the whole service is known
        h.tick(1.0)
    assert h.moves()[:1] == [(3, 2)]


def test_replicas_without_a_value_count_as_idle_toward_a_scale_out(
    store: DecisionStore, clock: VirtualClock
) -> None:
    """One busy replica's rate is in, the two others' first cycles are not: their load is
    unknown, so the average is over all three, as HPA counts them (found on the lab: a
    decider scaled out on one busy replica of three, the idle two not yet measured)."""
    h = Harness(store, clock, {**STEP, "aliyun.auto_scaling.max_instances": "5"})
    busy, *rest = h.start(3)
    for _ in range(10):
        clock.advance(1.0)
        h.samples(0.0, "ebbflow_container_memory_percent", rest)
        assert h.samples(100.0, names=[busy]) == []  # 100 / 3 < max 40: nothing to do
    made = []
    for _ in range(8):
        clock.advance(1.0)
        made += h.samples(100.0, names=[busy]) + h.samples(30.0, names=rest)
    # measured at last: (100 + 30 + 30) / 3 > 40
    assert [(d.from_replicas, d.to_replicas) for d in made][:1] == [(3, 4)]


def test_replicas_that_sent_nothing_yet_count_as_idle_toward_a_scale_out(
    store: DecisionStore, clock: VirtualClock
) -> None:
    """Past their warm-up, two replicas have no sample at all (their agents' first pushes
    are on their way): not ready, yet running. The busy one alone is not the service's
    average (found in CI: a decider scaled a third-busy service out on one busy replica
    and one idle, the third not yet heard from)."""
    h = Harness(store, clock, {**STEP, "aliyun.auto_scaling.max_instances": "5"})
    busy, quiet, silent = h.start(3)
    for _ in range(10):
        clock.advance(1.0)
        assert h.samples(100.0, names=[busy]) + h.samples(0.0, names=[quiet]) == []
    state = h.engine.services[WEB]
    policy = h.catalog.get(WEB).policy.policy  # type: ignore[union-attr]
    assert state.averages == {policy.rules[0].id: pytest.approx(100 / 3)}
    assert state.unseen(policy, clock()) == 1  # and a scale-in waits for it
    made = []
    for _ in range(8):  # heard from, and busy too: (100 + 0 + 100) / 3 > max 40
        clock.advance(1.0)
        made += h.samples(100.0, names=[busy, silent]) + h.samples(0.0, names=[quiet])
    assert [(d.from_replicas, d.to_replicas) for d in made][:1] == [(3, 4)]


def test_replicas_lost_with_their_engine_hold_a_scale_in_until_replaced(
    store: DecisionStore, clock: VirtualClock
) -> None:
    """An engine's shutdown stops its containers first: the replica that carried the load
    dies with it, and the idle rest would look like the whole service. Found on the lab: a
    Swarm service scaled in 3 → 1 while its busy task was being moved."""
    labels = {**STEP, "aliyun.auto_scaling.max_instances": "5", "ebbflow.scale.stabilization": "0"}
    h = Harness(store, clock, labels)
    h.start(3)
    h.bus.publish(EngineConnection("", True, 1, "connected", clock()))
    for _ in range(5):
        assert h.tick(20.0) == []  # between min and max: nothing to do
    busy = h.names[0]
    h.event(ContainerEvent(ContainerEventKind.DIE, ContainerInfo(id=busy, name=busy, image="i"),
                           clock()))  # fmt: skip
    h.names.remove(busy)
    h.bus.publish(EngineConnection("", False, 1, "engine stopped", clock()))
    for _ in range(20):  # two idle replicas seen: never in on them (the held recommendation
        for made in h.tick(1.0, act=False):  # of 3 may ask the lost one back)
            assert made.to_replicas >= 3, made.reason
            h.engine.handle(ActionResult(made, True, "no change", clock()))
    h.made.clear()
    h.start(1)  # its replacement (Swarm moved it): the whole service is seen again
    for _ in range(30):
        h.tick(1.0)
    assert h.moves()[:1] == [(3, 2)]


def test_no_second_decision_while_one_is_in_flight(
    store: DecisionStore, clock: VirtualClock
) -> None:
    h = Harness(store, clock, {**STEP, "ebbflow.scale.cooldown": "0"})
    h.start(1)
    assert len(h.tick(90.0, act=False) + h.tick(90.0, act=False)) == 1
    assert h.tick(90.0, seconds=h.engine.action_deadline + 1, act=False) != []


def test_no_decision_until_the_containers_match_the_last_action(
    store: DecisionStore, clock: VirtualClock
) -> None:
    """Swarm answers an update before its tasks start or stop: the engine waits for the
    containers instead of deciding the same move again."""
    h = Harness(store, clock, {**STEP, "ebbflow.scale.cooldown": "0"})
    h.start(1)
    (out,) = h.tick(90.0, act=False) or h.tick(90.0, act=False)
    h.engine.handle(ActionResult(out, True, "replicas 1 → 2", clock()))  # no task yet
    assert [h.tick(90.0, act=False) for _ in range(5)] == [[]] * 5
    h.start(1)  # the task is up: the engine may decide again
    assert h.tick(90.0, act=False) != []


def test_containers_that_never_match_the_action_are_decided_on_again(
    store: DecisionStore, clock: VirtualClock
) -> None:
    h = Harness(store, clock, {**STEP, "ebbflow.scale.cooldown": "0"})
    h.start(1)
    (out,) = h.tick(90.0, act=False) or h.tick(90.0, act=False)
    h.engine.handle(ActionResult(out, True, "replicas 1 → 2", clock()))
    assert h.tick(90.0, seconds=CONVERGE_DEADLINE + 1, act=False) != []


def test_dry_run_decides_and_records_but_is_marked(store: DecisionStore, clock) -> None:
    h = Harness(store, clock, STEP, dry_run=True)
    h.start(1)
    for _ in range(3):
        h.tick(90.0)
    assert h.made[0].dry_run and store.recent()[0].dry_run
    assert store.last_decision_time(WEB, dry_run=False) is None


def test_bad_labels_disable_only_that_service(store: DecisionStore, clock) -> None:
    h = Harness(store, clock, {**STEP, "aliyun.auto_scaling.max_cpu": "abc"})
    h.start(1)
    problem = h.events.get_nowait()
    assert isinstance(problem, PolicyProblem) and problem.service == WEB
    assert "aliyun.auto_scaling.max_cpu" in problem.errors[0]
    for _ in range(10):
        h.tick(99.0)
    assert h.made == []
    metrics = h.telemetry()
    assert metrics["ebbflow_policy_valid"] == 0 and metrics["ebbflow_policy_errors"] == 1


def test_a_fixed_policy_is_announced(store: DecisionStore, clock) -> None:
    h = Harness(store, clock, {**STEP, "aliyun.auto_scaling.max_cpu": "abc"})
    h.start(1)
    assert isinstance(h.events.get_nowait(), PolicyProblem)
    h.labels = {  # redeployed by compose with a fix
        **h.labels,
        "aliyun.auto_scaling.max_cpu": "40",
        "com.docker.compose.config-hash": "fixed",
    }
    h.start(1)
    fixed = h.events.get_nowait()
    assert isinstance(fixed, PolicyProblem) and fixed.service == WEB and fixed.errors == ()
    assert h.events.get_nowait() is None


def test_config_policy_applies_by_selector_and_wins(store, clock) -> None:
    defaults = RulesConfig(
        policies=(
            ConfiguredPolicy(
                selector=PolicySelector(service="shop/*"),
                labels={"aliyun.auto_scaling.max_cpu": "80"},
            ),
        )
    )
    h = Harness(store, clock, STEP, defaults=defaults)  # labels say 40, the config says 80
    h.start(1)
    for _ in range(5):
        h.tick(60.0)
    assert h.made == []
    for _ in range(3):
        h.tick(90.0)
    assert h.moves() == [(1, 2)]


# -- properties --------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    trace=st.lists(st.floats(0, 100), min_size=5, max_size=120),
    low=st.integers(1, 3),
    span=st.integers(0, 5),
    cooldown_up=st.integers(0, 10),
    cooldown_down=st.integers(0, 10),
    mode=st.sampled_from(["step", "proportional", "predictive"]),
    gaps=st.lists(st.integers(1, 4), min_size=120, max_size=120),
)
def test_bounds_and_cooldowns_always_hold(
    trace: list[float],
    low: int,
    span: int,
    cooldown_up: int,
    cooldown_down: int,
    mode: str,
    gaps: list[int],
) -> None:
    high = low + span
    labels = {
        "ebbflow.scale.min_replicas": str(low),
        "ebbflow.scale.max_replicas": str(high),
        "ebbflow.scale.cooldown_up": str(cooldown_up),
        "ebbflow.scale.cooldown_down": str(cooldown_down),
        "ebbflow.scale.window": "3",
        "ebbflow.scale.metric": "cpu",
    }
    if mode == "step":
        labels |= {"ebbflow.scale.max": "70", "ebbflow.scale.min": "30", "ebbflow.scale.step": "2"}
    else:
        labels |= {"ebbflow.scale.target": "50", "ebbflow.scale.mode": mode}
    clock = VirtualClock()
    h = Harness(DecisionStore(":memory:"), clock, labels)
    h.start(low)
    for value, gap in zip(trace, gaps, strict=False):
        h.tick(value, seconds=gap)
        assert low <= len(h.names) <= high
    for d in h.made:
        assert low <= d.to_replicas <= high
    for direction, cooldown in (("out", cooldown_up), ("in", cooldown_down)):
        times = [d.timestamp for d in h.made if d.direction == direction]
        assert all(b - a >= cooldown for a, b in itertools.pairwise(times))


def test_a_service_outside_the_scope_is_watched_but_never_decided(store: DecisionStore) -> None:
    from ebbflow.config import ScopeConfig

    clock = VirtualClock()
    h = Harness(store, clock, PROPORTIONAL)
    h.catalog.scope = ScopeConfig(projects=("other",))
    h.start()
    for _ in range(5):
        assert h.tick(100.0) == []
    telemetry = h.telemetry()
    assert telemetry["ebbflow_service_in_scope"] == 0.0
    assert telemetry["ebbflow_service_replicas"] == 1.0  # still monitored
    h.catalog.scope = ScopeConfig(projects=("shop",))
    h.start()  # a new replica's event re-reads the scope
    assert h.tick(100.0) != []


def test_reaching_the_minimum_is_held_by_no_cooldown_and_starts_none(
    store: DecisionStore,
) -> None:
    """A deploy started short of min_replicas: brought up at once, and a real load right
    after is not kept waiting a cooldown."""
    clock = VirtualClock()
    labels = {**PROPORTIONAL, "ebbflow.scale.min_replicas": "2", "ebbflow.scale.cooldown": "60"}
    h = Harness(store, clock, labels)
    h.start()
    h.tick(50.0)  # at target: only the minimum asks for more
    h.tick(100.0)  # then the load doubles
    assert h.moves() == [(1, 2), (2, 3)]  # the second one out of the load, a second later
    assert [d.origin for d in h.made] == ["bounds", "policy"]
    assert h.made[1].timestamp - h.made[0].timestamp == 1.0


def test_a_state_file_that_refuses_the_startup_is_counted_and_shown_until_it_works(
    tmp_path: Path, clock: VirtualClock, caplog: pytest.LogCaptureFixture
) -> None:
    class FullDisk(DecisionStore):
        refuse = 2

        def record_startup(self, service, startup):  # type: ignore[no-untyped-def]
            if self.refuse:
                self.refuse -= 1
                raise sqlite3.OperationalError("database or disk is full")
            super().record_startup(service, startup)

    caplog.set_level(logging.INFO, "ebbflow.rules")
    store = FullDisk(tmp_path / "s.db")
    h = Harness(store, clock, PROPORTIONAL)
    h.start(1)

    def learn(seconds: float) -> None:
        before = list(h.names)
        (d,) = h.tick(90.0, names=before, act=False)
        h.finish(d)
        h.tick(60.0, names=before, seconds=seconds, act=False)
        h.tick(60.0, names=h.names, seconds=0, act=False)  # the new ones' first samples

    learn(4)
    learn(6)
    engine = h.engine
    assert engine.services[WEB].startup is not None  # learned all the same, in memory
    assert engine.services[WEB].startup.seen == 2
    assert engine.state_errors == 2 and store.startup(WEB) is None
    assert engine.health_problem() == (
        "state file: recording shop/web's start-up failed: database or disk is full"
    )
    counted = {s.name: s.value for s in engine.telemetry(clock())}
    assert counted["ebbflow_rules_state_errors_total"] == 2
    assert caplog.text.count("state file: recording") == 1  # once per outage
    learn(2)  # the disk has room again
    assert engine.health_problem() is None and engine.state_errors == 2
    assert store.startup(WEB) == engine.services[WEB].startup
    assert "state file works again" in caplog.text


def test_no_decision_rests_on_less_than_a_full_window_after_a_start(
    store: DecisionStore, clock: VirtualClock
) -> None:
    """Right after a start, 1 s of samples is not the 30 s the reason would claim."""
    labels = {**PROPORTIONAL, "ebbflow.scale.window": "30", "ebbflow.scale.stabilization": "0"}
    h = Harness(store, clock, labels)
    h.start(4)
    for _ in range(29):
        assert h.tick(5.0) == []  # far below target, for 29 s only
    (d,) = h.tick(5.0)
    assert d.to_replicas < 4 and d.reason.endswith("over 30s")
    # A reconnect to the engine: what happened meanwhile is unknown, the window starts over.
    h.bus.publish(EngineConnection("", True, 2, "connected", clock()))
    h.engine.handle(EngineConnection("", True, 2, "connected", clock()))
    h.made.clear()
    for _ in range(29):
        assert h.tick(100.0) == []
    assert h.tick(100.0) != []


def test_a_window_that_is_not_full_holds_but_bounds_still_hold(
    store: DecisionStore, clock: VirtualClock
) -> None:
    labels = {**PROPORTIONAL, "ebbflow.scale.window": "30", "ebbflow.scale.min_replicas": "2"}
    h = Harness(store, clock, labels)
    h.start(1)
    (d,) = h.tick(50.0)  # below min_replicas: no data is needed to know that
    assert (d.from_replicas, d.to_replicas, d.origin) == (1, 2, "bounds")


def test_ebbflows_own_telemetry_never_reaches_the_engine(store: DecisionStore, clock) -> None:
    """A batch of ebbflow's own telemetry is about ebbflow: the engine's queue never holds
    one, even one whose samples name a replica and the policy's metric; a collector's
    batch of the same samples is queued."""
    h = Harness(store, clock, PROPORTIONAL)
    (name,) = h.start()
    queue = h.engine.subscription
    while queue.get_nowait() is not None:  # the start's events
        pass
    same = (Sample(CPU_METRIC, 99.0, labels_of({"name": name}), clock()),)
    h.bus.publish(SampleBatch(TELEMETRY_SOURCE, clock(), same))
    assert queue.stats().depth == 0
    h.bus.publish(SampleBatch("containers", clock(), same))
    assert queue.get_nowait() == SampleBatch("containers", clock(), same)
    assert queue.get_nowait() is None
