"""The one action path: every change ebbflow makes to an engine goes through here.

Scaling decisions come off the bus; healing, migration and leftover removal come from the
healer and the migrator as `HealAction`s; an actuator's own answer to a node's health
(Swarm drains a node) as a `NodeAction`. Every action gets the same treatment:

- the action gate: one action at a time per service, a global rate limit;
- the owner check just before acting: out of scope, paused or not the owner → not done;
- one timeout, one dry run (nothing changes; the result says what would have happened);
- one error shape: an outcome with `ok` false and a one-line reason, never an exception;
- one audit row: a decision's outcome beside it, a healing step in the healing log, each
  published on the bus (`ActionResult`, `HealingStep`).

On shutdown, actions under way are allowed to finish (within a grace period) rather than
being cut off halfway through a clone; a decision whose action was cut off anyway
(SIGKILL, power) is finished at the next start, if it is a scale-out younger than its
policy's window (actions converge on the decision's replica count, so finishing one is
never doing it twice); a scale-in, or anything older, is marked expired and decided again
from fresh samples; an older unfinished decision that a newer one overtook is superseded.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable, Sequence
from types import MappingProxyType

from ebbflow.context import DecisionContext
from ebbflow.metrics import Desc
from ebbflow.model import (
    ActionResult,
    Decision,
    HealingStep,
    HealthChange,
    OwnershipChange,
    Sample,
)
from ebbflow.plugins import Actuator, WatchesNodes
from ebbflow.services import parse_service_key
from ebbflow.state import StoredDecision

from .actions import Action, HealAction, NodeAction, Outcome, ScaleAction
from .safety import ActionGate

log = logging.getLogger("ebbflow.scaler")

RESUME_WITHIN = 30.0  # seconds: the default policy window, for decisions that name none

ACTIONS = Desc(
    "ebbflow_actions_total",
    "Scaling actions, by direction and outcome: ok, failed, or refused (not attempted: "
    "a safety gate said no, such as an ownership changed since the decision).",
    "counter",
    ("direction", "outcome"),
)
RATE_LIMITED = Desc(
    "ebbflow_actions_rate_limited_total",
    "Actions (scaling and healing) that waited for the global rate limit.",
    "counter",
)


def actuator_for(actuators: Sequence[Actuator], decision: Decision) -> Actuator | None:
    return next((a for a in actuators if a.supports(decision.service)), None)


class ActionRunner:
    name = "scaler"

    def __init__(
        self,
        ctx: DecisionContext,
        actuators: Sequence[Actuator],
        gate: ActionGate | None = None,
        action_timeout: float = 120.0,
        shutdown_grace: float = 30.0,
    ) -> None:
        self.bus = ctx.bus
        self.catalog = ctx.catalog
        self.actuators = list(actuators)
        self.store = ctx.store
        self.clock = ctx.clock
        self.gate = gate or ActionGate(max_per_minute=1000)
        self.dry_run = ctx.dry_run
        self.action_timeout = action_timeout
        self.shutdown_grace = shutdown_grace
        self.subscription = ctx.bus.subscribe(
            "scaler", Decision, HealthChange, OwnershipChange, capacity=1024
        )
        # (direction, outcome): ok, failed or refused
        self.outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        # (service, action, outcome): healing steps, ok, failed or refused
        self.steps: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.unhealthy: set[str] = set()  # container names whose probe verdict is failing
        self._resumed = False
        self._calls = 0  # actions calling an engine right now
        self._quiet = asyncio.Event()
        self._quiet.set()

    # -- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        under_way: set[asyncio.Task[ActionResult]] = set()

        def start(decision: Decision) -> None:
            task = asyncio.create_task(self.carry_out(decision))
            under_way.add(task)
            task.add_done_callback(under_way.discard)

        if self.catalog.acting():
            self._resume(start)
        try:
            async for event in self.subscription:
                if isinstance(event, Decision):
                    start(event)
                elif isinstance(event, HealthChange):
                    if event.healthy:
                        self.unhealthy.discard(event.container.name)
                    else:
                        self.unhealthy.add(event.container.name)
                elif isinstance(event, OwnershipChange) and event.acting:
                    self._resume(start)
        finally:
            if under_way:
                log.info("letting %d action(s) under way finish", len(under_way))
                await asyncio.wait(under_way, timeout=self.shutdown_grace)
                for task in under_way:
                    task.cancel()

    def _resume(self, start: Callable[[Decision], None]) -> None:
        """Only the owner finishes what was cut off, once: a standby sharing the state
        file must not touch the decisions the owner has under way."""
        if self._resumed:
            return
        self._resumed = True
        for decision in self.resumable():
            start(decision)

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

    # -- one action --------------------------------------------------------------------------
    async def carry_out(self, decision: Decision) -> ActionResult:
        """A decision from the bus (or resumed): acted on, recorded, announced."""
        return self._result(decision, await self.execute(ScaleAction(decision)))

    def _result(self, decision: Decision, outcome: Outcome) -> ActionResult:
        return ActionResult(
            decision,
            outcome.ok,
            outcome.detail,
            self.clock(),
            outcome.containers,
            refused=outcome.refused,
        )

    async def execute(self, action: Action) -> Outcome:
        """The one path: gate, owner check, timeout, dry run, audit row, announcement."""
        async with self.gate.turn(action.service):
            outcome = await self._act(action)
        self._record(action, outcome)
        return outcome

    async def _act(self, action: Action) -> Outcome:
        dry = action.dry_run if isinstance(action, ScaleAction) else self.dry_run
        if dry and not isinstance(action, NodeAction):
            return Outcome(True, f"dry run: would {action.describe()}")
        why_not = (
            self.catalog.blocked()
            if isinstance(action, NodeAction)
            else self.catalog.not_acting(action.service)
        )
        if why_not is None and isinstance(action, ScaleAction):
            why_not = self._stale(action.decision)
        if why_not is not None:
            return Outcome(False, f"not done: {why_not}", refused=True)
        self._calls += 1
        self._quiet.clear()
        try:
            async with asyncio.timeout(self.action_timeout):
                return await self._call(action, dry)
        except Exception as err:
            why = (
                f"timed out after {self.action_timeout:g}s"
                if isinstance(err, TimeoutError)
                else f"{type(err).__name__}: {err}"
            )
            return Outcome(False, why)
        finally:
            self._calls -= 1
            if not self._calls:
                self._quiet.set()

    async def quiet(self) -> None:
        """Returns once no action is calling an engine: after ownership is lost, what was
        under way has finished before the next owner may start (a Kafka rebalance waits)."""
        await self._quiet.wait()

    def _stale(self, decision: Decision) -> str | None:
        """A decision taken under an ownership this instance has lost since (perhaps to
        regain it later): whoever owned the service in between may have acted already."""
        now = self.catalog.epoch()
        if decision.epoch is None or decision.epoch == now:
            return None
        return f"ownership changed since the decision (epoch {decision.epoch}, now {now})"

    async def _call(self, action: Action, dry: bool) -> Outcome:
        if isinstance(action, ScaleAction):
            actuator = actuator_for(self.actuators, action.decision)
            if actuator is None:
                names = ", ".join(a.name for a in self.actuators) or "none"
                kind = action.service.kind
                return Outcome(False, f"no actuator scales {kind} services (enabled: {names})")
            result = await actuator.apply(action.decision, frozenset(self.unhealthy))
            return Outcome(result.ok, result.detail, result.containers)
        if isinstance(action, NodeAction):
            assert isinstance(action.actuator, WatchesNodes)
            detail = await action.actuator.node_changed(action.change, dry_run=dry)
            return Outcome(True, detail or "", skipped=detail is None)
        healer = next((a for a in self.actuators if a.can_heal(action.service)), None)
        if healer is None:
            return Outcome(False, f"no actuator heals {action.service.kind} services")
        return Outcome(True, await healer.heal(action.service, action.container, action.action))

    def _record(self, action: Action, outcome: Outcome) -> None:
        """The audit row and the announcement, the same for every action."""
        if isinstance(action, ScaleAction):
            decision = action.decision
            self.store.record_outcome(decision, outcome.ok, outcome.detail, outcome.refused)
            self.outcomes[(decision.direction, outcome.text)] += 1
            if outcome.ok:
                log.info("service %s: %s", decision.service, outcome.detail)
            elif outcome.refused:
                log.warning("service %s: action refused: %s", decision.service, outcome.detail)
            else:
                log.error("service %s: action failed: %s", decision.service, outcome.detail)
            self.bus.publish(self._result(decision, outcome))
            return
        if outcome.skipped:
            return  # the actuator had nothing to do (a node none of its business)
        slot = action.slot if isinstance(action, HealAction) else f"node:{action.change.node}"
        self.note(action.step(outcome, self.clock(), self.dry_run), slot)

    def note(self, step: HealingStep, slot: str = "") -> None:
        """A healing step in the healing log and on the bus: the runner's own actions, and
        the healer's verdicts that are no action (give up, recovered)."""
        self.store.record_step(step, slot or step.container)
        self.steps[(str(step.service), step.action, step.outcome)] += 1
        if step.ok:
            log.info("container %s: %s: %s", step.container, step.action, step.detail)
        elif step.refused:
            log.warning("container %s: %s refused: %s", step.container, step.action, step.detail)
        else:
            log.error("container %s: %s failed: %s", step.container, step.action, step.detail)
        self.bus.publish(step)

    def acted_on(self, container_id: str) -> bool:
        """Whether ebbflow stopped, restarted or removed the container lately."""
        return any(a.acted_on(container_id) for a in self.actuators)

    def stopped_by_us(self, container_id: str) -> bool:
        """Whether ebbflow stopped the container (its exit is no failure)."""
        return any(a.stopped_by_us(container_id) for a in self.actuators)

    # -- telemetry ---------------------------------------------------------------------------
    def telemetry(self, now: float) -> Iterable[Sample]:
        for (direction, outcome), count in sorted(self.outcomes.items()):
            yield ACTIONS.sample(count, now, direction, outcome)
        yield RATE_LIMITED.sample(self.gate.rate_limited, now)
