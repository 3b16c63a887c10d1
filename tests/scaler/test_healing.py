"""The healer's steps, timing and bookkeeping, against a recording actuator."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from ebbflow.bus import Bus
from ebbflow.config import HealingConfig, HealingPolicy
from ebbflow.healing_policy import heals_exits, parse_healing
from ebbflow.model import (
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    HealingStep,
    HealthChange,
    OperatorControls,
    ServiceKey,
)
from ebbflow.scaler.healing import Healer, plan
from ebbflow.scaler.runner import ActionRunner
from ebbflow.scaler.safety import ActionGate
from ebbflow.state import DecisionStore

from .fakes import Owner, RecordingActuator, context

SERVICE = ServiceKey("label", "crashy")
FAST = {"ebbflow.service": "crashy", "ebbflow.heal.backoff": "0.05", "ebbflow.heal.budget": "2"}


def container(labels: dict[str, str] | None = None, restart_policy: str = "") -> ContainerInfo:
    return ContainerInfo(
        "c1",
        "crashy-1",
        "img",
        MappingProxyType(FAST if labels is None else labels),
        restart_policy=restart_policy,
    )


def test_plan_doubles_to_the_cap_then_replaces_then_gives_up() -> None:
    policy = HealingPolicy(backoff=10, backoff_max=300, budget=6)
    steps = [plan(policy, n, replaced=False) for n in range(7)]
    assert [(s.action, s.delay, s.attempt) for s in steps] == [
        ("restart", 10, 1),
        ("restart", 20, 2),
        ("restart", 40, 3),
        ("restart", 80, 4),
        ("restart", 160, 5),
        ("restart", 300, 6),
        ("replace", 300, 7),
    ]
    assert plan(policy, 7, replaced=True).action == "give_up"


def test_healing_labels_are_validated_by_name() -> None:
    policy, errors = parse_healing(
        {"ebbflow.heal.backoff": "2", "ebbflow.heal.budget": "1"}, HealingConfig()
    )
    assert policy is not None and (policy.backoff, policy.budget, policy.window) == (2, 1, 600)
    policy, errors = parse_healing(
        {"ebbflow.heal.budget": "-1", "ebbflow.heal.bakoff": "3"}, HealingConfig()
    )
    assert policy is None
    assert errors == (
        "ebbflow.heal.bakoff: unknown key",
        "ebbflow.heal.budget: Input should be greater than or equal to 0 (got '-1')",
    )


def test_which_exits_are_ebbflows_to_heal() -> None:
    assert heals_exits({"aliyun.scale": "2"}, "")
    assert heals_exits({"ebbflow.heal.budget": "2"}, "no")
    assert not heals_exits({"aliyun.scale": "2"}, "always")  # Docker restarts it
    assert not heals_exits({"ebbflow.service": "x"}, "")  # no policy claims it


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        dry_run: bool = False,
        fail_heal: bool = False,
        leader: bool = True,
    ) -> None:
        self.bus = Bus()
        self.actuator = RecordingActuator(fail_heal=fail_heal)
        self.store = DecisionStore(tmp_path / "state.db")
        self.steps = self.bus.subscribe("test", HealingStep)
        self.owner = Owner(self.bus, leader)
        ctx = context(self.bus, self.store, owner=self.owner, dry_run=dry_run)
        self.runner = ActionRunner(ctx, [self.actuator], ActionGate(100))
        self.healer = Healer(ctx, self.runner, HealingConfig())

    def die(self, info: ContainerInfo, detail: str = "exited with code 1") -> None:
        self.bus.publish(ContainerEvent(ContainerEventKind.DIE, info, time.time(), detail))

    def health(self, info: ContainerInfo, healthy: bool) -> None:
        self.bus.publish(HealthChange(info, SERVICE, healthy, "timeout", "", time.time()))

    async def step(self, timeout: float = 5.0) -> HealingStep:
        async with asyncio.timeout(timeout):
            event = await self.steps.get()
        assert isinstance(event, HealingStep)
        return event

    async def quiet(self, seconds: float = 0.3) -> None:
        """No step comes within `seconds`."""
        with pytest.raises(TimeoutError):
            await self.step(seconds)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Callable[..., Harness]]:
    tasks: list[asyncio.Task[None]] = []

    def make(**kwargs: Any) -> Harness:
        h = Harness(tmp_path, **kwargs)
        tasks.append(asyncio.create_task(h.healer.run()))
        return h

    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_crash_loop_backs_off_replaces_then_gives_up(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    info = container()
    seen = []
    for _ in range(3):
        h.die(info)
        seen.append(await h.step())
    h.die(info)
    gave_up = await h.step()
    assert [(s.action, s.attempt, s.ok) for s in seen] == [
        ("restart", 1, True),
        ("restart", 2, True),
        ("replace", 3, True),
    ]
    assert [s.next_delay for s in seen] == [0.1, 0.2, None]
    assert seen[0].reason == "exited with code 1" and seen[0].detail == "restarted crashy-1"
    assert (gave_up.action, gave_up.ok) == ("give_up", True)
    # The waits grew: 0.05, 0.1, 0.2 s after each exit.
    times = [t for _, _, t in h.actuator.healed]
    assert [a for _, a, _ in h.actuator.healed] == ["restart", "restart", "replace"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2
    h.die(info)
    await h.quiet()  # given up: no more restarts
    h.health(info, True)
    recovered = await h.step()
    assert recovered.action == "recovered"
    rows = h.store._db.execute("SELECT action FROM healing ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["restart", "restart", "replace", "give_up", "recovered"]


async def test_a_container_given_up_on_and_then_removed_is_no_longer_failing(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    info = container()
    for _ in range(4):
        h.die(info)
        last = await h.step()
    assert last.action == "give_up"
    h.bus.publish(ContainerEvent(ContainerEventKind.DESTROY, info, time.time()))
    removed = await h.step()
    assert (removed.action, removed.reason) == ("recovered", "container removed")
    assert h.healer.slots == {}
    # A container that takes its name starts with a fresh budget.
    h.die(info)
    again = await h.step()
    assert (again.action, again.attempt) == ("restart", 1)


async def test_a_failure_that_clears_during_the_wait_needs_no_step(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    info = container({**FAST, "ebbflow.heal.backoff": "0.3"})
    h.health(info, False)
    await asyncio.sleep(0.05)
    h.health(info, True)  # the probe passes again before the restart is due
    await h.quiet(0.5)
    h.die(info)
    await asyncio.sleep(0.05)
    h.bus.publish(ContainerEvent(ContainerEventKind.START, info, time.time()))  # started by hand
    await h.quiet(0.5)
    assert h.actuator.healed == []


async def test_a_probe_that_failed_before_the_lease_is_healed_by_the_new_leader(
    harness: Callable[..., Harness],
) -> None:
    """A verdict is announced once: one that came to a standby is not lost."""
    h = harness(leader=False)
    sick, cured = container(), ContainerInfo("c2", "crashy-2", "img", MappingProxyType(FAST))
    h.health(sick, False)
    h.health(cured, False)
    await asyncio.sleep(0.05)
    h.health(cured, True)  # passed again before the lease came
    await h.quiet(0.7)  # a standby never acts
    h.owner.lead()
    step = await h.step(3)
    assert (step.action, step.container, step.reason) == (
        "restart",
        "crashy-1",
        "probe failing (timeout)",
    )
    await h.quiet(0.7)
    assert [name for name, _, _ in h.actuator.healed] == ["crashy-1"]


async def test_a_probe_failing_while_its_service_was_paused_is_healed_on_resume(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    h.bus.publish(OperatorControls(frozenset({"crashy"}), frozenset(), time.time()))
    await asyncio.sleep(0.05)
    h.health(container(), False)
    await h.quiet(0.5)
    h.bus.publish(OperatorControls(frozenset(), frozenset(), time.time()))
    step = await h.step(3)
    assert (step.action, step.container) == ("restart", "crashy-1")


async def test_a_stopped_container_s_old_verdict_is_not_taken_up(
    harness: Callable[..., Harness],
) -> None:
    h = harness(leader=False)
    info = container()
    h.health(info, False)
    h.bus.publish(ContainerEvent(ContainerEventKind.DESTROY, info, time.time()))
    await asyncio.sleep(0.05)
    h.owner.lead()
    await h.quiet(1.2)
    assert h.actuator.healed == []


async def test_exits_that_are_not_failures_are_left_alone(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    h.actuator.ours.add("c1")
    h.die(container())  # ebbflow stopped it (scale-in)
    h.die(container({"ebbflow.service": "x"}))  # no policy claims it
    h.die(container(restart_policy="always"))  # Docker restarts it
    swarm = ContainerInfo(
        "c2", "web.1.x", "img", MappingProxyType({**FAST, "com.docker.swarm.service.name": "w"})
    )
    h.die(swarm)  # Swarm replaces its tasks
    h.die(container({**FAST, "ebbflow.heal.action": "none"}))
    h.die(container({**FAST, "ebbflow.heal.budget": "many"}))  # a bad label: logged, not healed
    await h.quiet(0.4)
    assert h.actuator.healed == []


async def test_containers_that_never_fail_leave_nothing_behind(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    for n in range(50):
        info = ContainerInfo(f"c{n}", f"web-{n}", "img", MappingProxyType(FAST))
        h.bus.publish(ContainerEvent(ContainerEventKind.START, info, time.time()))
        h.health(info, True)
        h.bus.publish(ContainerEvent(ContainerEventKind.DESTROY, info, time.time()))
    await h.quiet(0.2)
    assert h.healer.slots == {}


async def test_dry_run_plans_the_steps_and_changes_nothing(
    harness: Callable[..., Harness],
) -> None:
    h = harness(dry_run=True)
    info = container()
    h.health(info, False)
    step = await h.step()
    assert (step.action, step.dry_run, step.detail) == (
        "restart",
        True,
        "dry run: would restart crashy-1",
    )
    assert h.actuator.healed == []


async def test_a_failed_step_is_announced_and_counts(
    harness: Callable[..., Harness],
) -> None:
    h = harness(fail_heal=True)
    h.die(container())
    step = await h.step()
    assert (step.action, step.ok, step.detail) == (
        "restart",
        False,
        "RuntimeError: engine said no",
    )
    samples = {
        (s.name, s.labels): s.value for s in h.healer.telemetry(0.0) if s.name.endswith("_total")
    }
    assert samples == {
        (
            "ebbflow_healing_steps_total",
            (("action", "restart"), ("outcome", "failed"), ("service", "crashy")),
        ): 1
    }


async def test_a_step_refused_by_a_safety_gate_is_refused_not_failed_and_spends_no_budget(
    harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    """Ownership lost between a step's plan and its turn (before any announcement): the
    runner refuses it. It is `refused` in the log, the metric, the healing log and on the
    bus, and it spends none of the restart budget, now or after a restart of ebbflow."""
    h = harness()
    h.die(container())
    await asyncio.sleep(0.01)  # planned: a restart in 0.05 s
    h.owner.leading = False
    step = await h.step()
    assert (step.action, step.ok, step.refused, step.outcome) == ("restart", False, True, "refused")
    assert step.detail.startswith("not done: ")
    assert h.actuator.healed == []
    samples = {s.labels: s.value for s in h.healer.telemetry(0.0) if s.name.endswith("_total")}
    assert samples == {(("action", "restart"), ("outcome", "refused"), ("service", "crashy")): 1}
    (slot,) = h.healer.slots.values()
    assert list(slot.steps) == []
    assert h.store.healing_since(0.0, dry_run=False) == []
    assert [row["outcome"] for row in h.store.recent_steps()] == ["refused"]
    assert "restart refused: not done: " in caplog.text and "restart failed" not in caplog.text


async def test_a_restart_of_ebbflow_continues_the_backoff(
    tmp_path: Path, harness: Callable[..., Harness]
) -> None:
    first = harness()
    info = container()
    first.die(info)
    await first.step()
    first.die(info)
    await first.step()
    second = harness()  # same state file: two restarts already in the window
    second.die(info)
    step = await second.step()
    assert (step.action, step.attempt) == ("replace", 3)
