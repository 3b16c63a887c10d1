import asyncio
from pathlib import Path

from ebbflow.bus import Bus
from ebbflow.model import ActionResult, Decision, ServiceKey
from ebbflow.scaler.runner import ActionRunner
from ebbflow.state import DecisionStore

WEB = ServiceKey("compose", "web", "shop")


class SlowActuator:
    name = "slow"

    def __init__(self) -> None:
        self.applied: list[Decision] = []
        self.concurrent = 0
        self.most_concurrent = 0

    def supports(self, service: ServiceKey) -> bool:
        return service.kind == "compose"

    async def apply(self, decision: Decision) -> ActionResult:
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        await asyncio.sleep(0.1)
        self.concurrent -= 1
        self.applied.append(decision)
        return ActionResult(decision, True, "done", 0.0)


def make(tmp_path: Path) -> tuple[Bus, SlowActuator, DecisionStore, ActionRunner]:
    bus, actuator = Bus(), SlowActuator()
    store = DecisionStore(tmp_path / "s.db")
    return bus, actuator, store, ActionRunner(bus, actuator, store, lambda: 0.0)


async def test_dry_run_changes_nothing_and_records_outcome(tmp_path: Path) -> None:
    _, actuator, store, runner = make(tmp_path)
    decision = Decision(WEB, 1, 2, "r", 5.0, dry_run=True)
    store.record(decision)
    result = await runner.carry_out(decision)
    assert result.ok and "dry run" in result.detail and actuator.applied == []
    assert store.recent()[0].outcome == "ok"


async def test_unsupported_service_fails_cleanly(tmp_path: Path) -> None:
    _, _actuator, _, runner = make(tmp_path)
    result = await runner.carry_out(Decision(ServiceKey("swarm", "api"), 1, 2, "r", 1.0))
    assert not result.ok and "cannot scale swarm services" in result.detail


async def test_one_action_at_a_time_per_service(tmp_path: Path) -> None:
    _, actuator, _, runner = make(tmp_path)
    await asyncio.gather(*(runner.carry_out(Decision(WEB, 1, 2, "r", float(n))) for n in range(3)))
    assert actuator.most_concurrent == 1 and len(actuator.applied) == 3


async def test_shutdown_lets_actions_under_way_finish(tmp_path: Path) -> None:
    bus, actuator, _, runner = make(tmp_path)
    task = asyncio.create_task(runner.run())
    bus.publish(Decision(WEB, 1, 2, "r", 1.0))
    await asyncio.sleep(0.02)  # the action has started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(actuator.applied) == 1
