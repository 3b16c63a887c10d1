"""Carries decisions to the actuator that drives the service, through the action gate (one
action at a time per service, a global rate limit), each under a timeout.

Each outcome is recorded beside its decision. On shutdown, actions under way are allowed
to finish (within a grace period) rather than being cut off halfway through a clone; a
decision whose action was cut off anyway (SIGKILL, power) is finished at the next start,
if it is a scale-out younger than its policy's window (actions converge on the decision's
replica count, so finishing one is never doing it twice); a scale-in, or anything older, is
marked expired and decided again from fresh samples; an older unfinished decision that a
newer one overtook is marked superseded.
In dry-run mode nothing is changed; the result says what would have happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from types import MappingProxyType

from ebbflow.bus import Bus
from ebbflow.model import ActionResult, Decision, HealthChange, Sample, labels_of
from ebbflow.plugins import Actuator
from ebbflow.services import parse_service_key
from ebbflow.state import DecisionStore, StoredDecision

from .safety import ActionGate

log = logging.getLogger("ebbflow.scaler")

RESUME_WITHIN = 30.0  # seconds: the default policy window, for decisions that name none


def actuator_for(actuators: Sequence[Actuator], decision: Decision) -> Actuator | None:
    return next((a for a in actuators if a.supports(decision.service)), None)


class ActionRunner:
    name = "scaler"

    def __init__(
        self,
        bus: Bus,
        actuators: Sequence[Actuator],
        store: DecisionStore,
        clock: Callable[[], float],
        gate: ActionGate | None = None,
        action_timeout: float = 120.0,
        shutdown_grace: float = 30.0,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.bus = bus
        self.may_act = may_act  # the lease
        self.actuators = list(actuators)
        self.store = store
        self.clock = clock
        self.gate = gate or ActionGate(max_per_minute=1000)
        self.action_timeout = action_timeout
        self.shutdown_grace = shutdown_grace
        self.subscription = bus.subscribe("scaler", Decision, HealthChange, capacity=1024)
        self.outcomes: dict[tuple[str, bool], int] = {}
        self.unhealthy: set[str] = set()  # container names whose probe verdict is failing

    async def run(self) -> None:
        under_way: set[asyncio.Task[ActionResult]] = set()

        def start(decision: Decision) -> None:
            task = asyncio.create_task(self.carry_out(decision))
            under_way.add(task)
            task.add_done_callback(under_way.discard)

        async def resume() -> None:
            # Only the leader finishes what was cut off: a standby sharing the state
            # file must not touch the decisions the leader has under way.
            while not self.may_act():  # noqa: ASYNC110 (the lease is polled, not signalled)
                await asyncio.sleep(0.2)
            for decision in self.resumable():
                start(decision)

        resuming = asyncio.create_task(resume())
        try:
            async for event in self.subscription:
                if isinstance(event, Decision):
                    start(event)
                elif isinstance(event, HealthChange):
                    if event.healthy:
                        self.unhealthy.discard(event.container.name)
                    else:
                        self.unhealthy.add(event.container.name)
        finally:
            resuming.cancel()
            if under_way:
                log.info("letting %d action(s) under way finish", len(under_way))
                await asyncio.wait(under_way, timeout=self.shutdown_grace)
                for task in under_way:
                    task.cancel()

    def resumable(self) -> list[Decision]:
        """The newest unfinished decision of each service, when it still means something;
        older ones are superseded. A scale-in is never finished without fresh data, and a
        decision older than its policy's window is expired: the engine decides again."""
        newest: dict[str, StoredDecision] = {}
        for stored in self.store.unfinished():
            overtaken = newest.get(stored.service)
            if overtaken is not None:
                self.store.record_outcome_text(
                    overtaken.id, "superseded", f"overtaken by decision {stored.id}"
                )
            newest[stored.service] = stored
        decisions = []
        now = self.clock()
        for stored in newest.values():
            window = float(stored.inputs.get("window", RESUME_WITHIN))
            age = now - stored.timestamp
            why = None
            if stored.to_replicas < stored.from_replicas:
                why = "a scale-in is not finished without fresh data"
            elif age > window:
                why = f"{age:.0f}s old, past its window of {window:g}s"
            if why is not None:
                log.info(
                    "service %s: a decision cut off by a stop expired (%s): %s",
                    stored.service,
                    why,
                    stored.reason,
                )
                self.store.record_outcome_text(stored.id, "expired", why + "; decided again")
                continue
            log.info(
                "service %s: finishing a decision cut off by a stop: %s",
                stored.service,
                stored.reason,
            )
            decisions.append(
                Decision(
                    parse_service_key(stored.service),
                    stored.from_replicas,
                    stored.to_replicas,
                    stored.reason,
                    stored.timestamp,
                    MappingProxyType(dict(stored.inputs)),
                    origin=stored.origin,
                )
            )
        return decisions

    async def carry_out(self, decision: Decision) -> ActionResult:
        async with self.gate.turn(decision.service):
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
        if not self.may_act():
            return ActionResult(
                decision,
                False,
                "not the leader: another instance acts for this scope",
                self.clock(),
            )
        actuator = actuator_for(self.actuators, decision)
        if actuator is None:
            names = ", ".join(a.name for a in self.actuators) or "none"
            return ActionResult(
                decision,
                False,
                f"no actuator scales {decision.service.kind} services (enabled: {names})",
                self.clock(),
            )
        try:
            async with asyncio.timeout(self.action_timeout):
                return await actuator.apply(decision, frozenset(self.unhealthy))
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
        yield Sample(
            "ebbflow_actions_rate_limited_total",
            self.gate.rate_limited,
            (),
            now,
            "counter",
            "Actions (scaling and healing) that waited for the global rate limit.",
        )
