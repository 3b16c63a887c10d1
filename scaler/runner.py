"""Carries decisions to the actuator: one action at a time per service, each under a timeout.

Each outcome is recorded beside its decision. On shutdown, actions under way are allowed
to finish (within a grace period) rather than being cut off halfway through a clone.
In dry-run mode nothing is changed; the result says what would have happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from ebbflow.bus import Bus
from ebbflow.model import ActionResult, Decision, Sample, labels_of
from ebbflow.plugins import Actuator
from ebbflow.state import DecisionStore

log = logging.getLogger("ebbflow.scaler")


class ActionRunner:
    name = "scaler"

    def __init__(
        self,
        bus: Bus,
        actuator: Actuator,
        store: DecisionStore,
        clock: Callable[[], float],
        action_timeout: float = 120.0,
        shutdown_grace: float = 30.0,
    ) -> None:
        self.bus = bus
        self.actuator = actuator
        self.store = store
        self.clock = clock
        self.action_timeout = action_timeout
        self.shutdown_grace = shutdown_grace
        self.subscription = bus.subscribe("scaler", Decision, capacity=1024)
        self.outcomes: dict[tuple[str, bool], int] = {}
        self._locks: dict[object, asyncio.Lock] = {}

    async def run(self) -> None:
        under_way: set[asyncio.Task[ActionResult]] = set()
        try:
            async for event in self.subscription:
                if isinstance(event, Decision):
                    task = asyncio.create_task(self.carry_out(event))
                    under_way.add(task)
                    task.add_done_callback(under_way.discard)
        finally:
            if under_way:
                log.info("letting %d action(s) under way finish", len(under_way))
                await asyncio.wait(under_way, timeout=self.shutdown_grace)
                for task in under_way:
                    task.cancel()

    async def carry_out(self, decision: Decision) -> ActionResult:
        lock = self._locks.setdefault(decision.service, asyncio.Lock())
        async with lock:
            result = await self._act(decision)
        self.store.record_outcome(decision, result.ok, result.detail)
        key = (decision.direction, result.ok)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        if result.ok:
            log.info("service %s: %s", decision.service, result.detail)
        else:
            log.error("service %s: action failed: %s", decision.service, result.detail)
        self.bus.publish(result)
        return result

    async def _act(self, decision: Decision) -> ActionResult:
        if decision.dry_run:
            return ActionResult(
                decision, True, f"dry run: would scale to {decision.to_replicas}", self.clock()
            )
        if not self.actuator.supports(decision.service):
            return ActionResult(
                decision,
                False,
                f"the {self.actuator.name} actuator cannot scale {decision.service.kind} services",
                self.clock(),
            )
        try:
            async with asyncio.timeout(self.action_timeout):
                return await self.actuator.apply(decision)
        except Exception as err:
            why = (
                f"timed out after {self.action_timeout}s"
                if isinstance(err, TimeoutError)
                else f"{type(err).__name__}: {err}"
            )
            return ActionResult(decision, False, why, self.clock())

    def telemetry(self, now: float) -> Iterable[Sample]:
        for (direction, ok), count in sorted(self.outcomes.items()):
            labels = labels_of({"direction": direction, "outcome": "ok" if ok else "failed"})
            yield Sample(
                "ebbflow_actions_total",
                count,
                labels,
                now,
                "counter",
                "Scaling actions carried out, by direction and outcome.",
            )
