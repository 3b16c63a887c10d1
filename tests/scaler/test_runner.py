import asyncio
from pathlib import Path

import pytest

from ebbflow.bus import Bus
from ebbflow.model import ContainerInfo, Decision, HealthChange, ServiceKey
from ebbflow.scaler import safety
from ebbflow.scaler.runner import ActionRunner
from ebbflow.scaler.safety import ActionGate
from ebbflow.state import DecisionStore

from .fakes import Owner, RecordingActuator, context

WEB = ServiceKey("compose", "web", "shop")


def make(
    tmp_path: Path, gate: ActionGate | None = None
) -> tuple[Bus, RecordingActuator, DecisionStore, ActionRunner]:
    bus, actuator = Bus(), RecordingActuator()
    store = DecisionStore(tmp_path / "s.db")
    runner = ActionRunner(context(bus, store, lambda: 0.0), [actuator], gate)
    return bus, actuator, store, runner


async def test_dry_run_changes_nothing_and_records_outcome(tmp_path: Path) -> None:
    _, actuator, store, runner = make(tmp_path)
    decision = Decision(WEB, 1, 2, "r", 5.0, dry_run=True)
    store.record(decision)
    result = await runner.carry_out(decision)
    assert result.ok and "dry run" in result.detail and actuator.applied == []
    assert store.recent()[0].outcome == "ok"


async def test_a_decision_from_an_earlier_ownership_epoch_is_refused(tmp_path: Path) -> None:
    """Ownership lost (and won back) between the decision and its turn: whoever owned the
    service in between may have acted, so the decision is stale and the engine untouched."""
    bus, actuator = Bus(), RecordingActuator()
    store, owner = DecisionStore(tmp_path / "s.db"), Owner(Bus())
    runner = ActionRunner(context(bus, store, lambda: 0.0, owner), [actuator])
    stale = Decision(WEB, 1, 2, "r", 1.0, owner="decider-a (partition 3)", epoch=owner.epoch())
    store.record(stale)
    owner.lead(False)
    owner.lead(True)
    result = await runner.carry_out(stale)
    assert not result.ok and actuator.applied == []
    assert result.detail == "not done: ownership changed since the decision (epoch 0, now 2)"
    row = store.recent()[0]
    assert row.owner == "decider-a (partition 3)" and row.outcome == "refused"
    assert not result.ok and result.refused and result.outcome == "refused"
    actions = {
        s.labels: s.value for s in runner.telemetry(0.0) if s.name == "ebbflow_actions_total"
    }
    assert actions == {(("direction", "out"), ("outcome", "refused")): 1.0}
    fresh = Decision(WEB, 1, 2, "r", 2.0, epoch=owner.epoch())
    assert (await runner.carry_out(fresh)).ok and len(actuator.applied) == 1


async def test_unsupported_service_fails_cleanly(tmp_path: Path) -> None:
    _, _actuator, _, runner = make(tmp_path)
    result = await runner.carry_out(Decision(ServiceKey("swarm", "api"), 1, 2, "r", 1.0))
    assert not result.ok
    assert result.detail == "no actuator scales swarm services (enabled: recording)"


async def test_one_action_at_a_time_per_service(tmp_path: Path) -> None:
    _, actuator, _, runner = make(tmp_path)
    await asyncio.gather(*(runner.carry_out(Decision(WEB, 1, 2, "r", float(n))) for n in range(3)))
    assert actuator.most_concurrent == 1 and len(actuator.applied) == 3


async def test_global_rate_limit_makes_the_excess_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safety, "RATE_WINDOW", 0.5)
    gate = ActionGate(max_per_minute=2)
    _, actuator, _, runner = make(tmp_path, gate)
    actuator.delay = 0.0
    services = [ServiceKey("compose", f"s{n}", "p") for n in range(3)]
    loop = asyncio.get_running_loop()
    began = loop.time()
    finished: list[float] = []

    async def act(service: ServiceKey) -> None:
        await runner.carry_out(Decision(service, 1, 2, "r", 1.0))
        finished.append(loop.time() - began)

    await asyncio.gather(*(act(s) for s in services))
    finished.sort()
    assert finished[1] < 0.25 and finished[2] >= 0.45  # the third waited for the window
    assert gate.rate_limited == 1


async def test_shutdown_lets_actions_under_way_finish(tmp_path: Path) -> None:
    bus, actuator, _, runner = make(tmp_path)
    task = asyncio.create_task(runner.run())
    bus.publish(Decision(WEB, 1, 2, "r", 1.0))
    await asyncio.sleep(0.02)  # the action has started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(actuator.applied) == 1


async def test_scale_in_is_told_which_replicas_are_unhealthy(tmp_path: Path) -> None:
    bus, actuator, _, runner = make(tmp_path)
    task = asyncio.create_task(runner.run())
    sick = ContainerInfo("id2", "shop_web_2", "img")
    bus.publish(HealthChange(sick, WEB, False, "timeout", "", 1.0))
    bus.publish(Decision(WEB, 3, 2, "r", 2.0))
    for _ in range(100):
        if actuator.applied:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert actuator.applied[0][1] == frozenset({"shop_web_2"})


async def test_a_decision_cut_off_by_a_stop_is_finished_once_at_start(tmp_path: Path) -> None:
    """Two unfinished decisions of one service (a SIGKILL came twice): only the newest is
    carried out; the older is superseded; a dry run and a finished one are left alone."""
    _bus, actuator, store, runner = make(tmp_path)
    store.record(Decision(WEB, 1, 2, "older", 1.0))
    store.record(Decision(WEB, 2, 3, "newer", 2.0))
    finished = Decision(ServiceKey("compose", "db", "shop"), 1, 2, "done", 1.5)
    store.record(finished)
    store.record_outcome(finished, True, "started")
    store.record(Decision(ServiceKey("compose", "q", "shop"), 1, 2, "dry", 1.7, dry_run=True))
    task = asyncio.create_task(runner.run())
    for _ in range(100):
        if actuator.applied:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [(d.reason, d.to_replicas) for d, _ in actuator.applied] == [("newer", 3)]
    outcomes = {d.reason: (d.outcome, d.detail) for d in store.recent()}
    assert outcomes["older"] == ("superseded", "overtaken by decision 2")
    assert outcomes["newer"] == ("ok", "done")
    assert outcomes["dry"] == (None, None)
    assert store.unfinished() == []


async def test_at_start_a_stale_or_scale_in_decision_expires_instead_of_acting(
    tmp_path: Path,
) -> None:
    """A 2-hour-old 4→1 on a loaded service must not remove three replicas at start."""
    bus, actuator = Bus(), RecordingActuator()
    store = DecisionStore(tmp_path / "s.db")
    now = 10_000.0
    runner = ActionRunner(context(bus, store, lambda: now), [actuator])
    db = ServiceKey("compose", "db", "shop")
    q = ServiceKey("compose", "q", "shop")
    store.record(Decision(WEB, 4, 1, "old scale-in", now - 7200, {"window": 30}))
    store.record(Decision(db, 1, 3, "old scale-out", now - 31, {"window": 30}))
    store.record(Decision(q, 1, 2, "fresh scale-out", now - 5, {"window": 30}))
    resumed = runner.resumable()
    assert [d.reason for d in resumed] == ["fresh scale-out"]
    outcomes = {d.reason: (d.outcome, d.detail) for d in store.recent()}
    assert outcomes["old scale-in"] == (
        "expired",
        "a scale-in is not finished without fresh data; decided again",
    )
    assert outcomes["old scale-out"] == (
        "expired",
        "31s old, past its window of 30s; decided again",
    )
    assert store.unfinished()[0].reason == "fresh scale-out"
