"""Recovery of failing containers, like a crash-loop backoff.

A container fails when its probe turns unhealthy, or when it exits while a policy claims
it and Docker's restart policy does not. Each failure schedules one step after a backoff
that doubles with every step in the budget window (10 s, 20 s, ... up to 5 min by
default): a restart in place while the budget lasts, then one replacement by a fresh
container, then ebbflow gives up on it and says so (an alert that resolves when the
container is healthy again). Steps are recorded, so a restart of ebbflow continues a crash
loop's backoff instead of starting it over. A failure that clears during the wait (the
probe passes again, someone started the container) cancels the step. Only the owner of
the service acts; one that becomes the owner heals what is failing then (a probe verdict
is announced once, so one seen as a standby is kept until it clears).

Swarm services are healed per service: Swarm replaces dead tasks itself, and a forced
update is how a failing one is restarted. Containers of a node at fault are the
migrator's (scaler/migration.py). Every step is carried out by the action runner.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ebbflow.config import HealingConfig, HealingPolicy
from ebbflow.context import DecisionContext
from ebbflow.controls import paused
from ebbflow.healing_policy import heals_exits, parse_healing
from ebbflow.metrics import Desc
from ebbflow.model import (
    FOUND_EXITED,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    EngineConnection,
    HealingAction,
    HealingScheduled,
    HealingStep,
    HealthChange,
    OperatorControls,
    OwnershipChange,
    Sample,
    ServiceKey,
)
from ebbflow.services import format_service_key, service_key

from .actions import HealAction
from .runner import ActionRunner

log = logging.getLogger("ebbflow.scaler.healing")

COUNTED_STEPS: dict[str, HealingAction] = {"restart": "restart", "replace": "replace"}
BLOCKED_RECHECK = 1.0  # seconds between looks at whether actions may be taken again
MAX_AWAITING = 4096  # exits kept for when this instance may act (memory bound)
# Seconds a stop by someone else stays open to another reading: an engine's shutdown stops
# its containers (each within its stop timeout) before its event stream ends.
STOP_EVIDENCE = 60.0

HEALING_STEPS = Desc(
    "ebbflow_healing_steps_total",
    "Healing steps (restart, replace, give_up, recovered), by service and outcome: ok, "
    "failed, or refused (not attempted: a safety gate said no).",
    "counter",
    ("action", "outcome", "service"),
)
GIVEN_UP = Desc(
    "ebbflow_healing_given_up", "Containers ebbflow stopped healing after their budget ran out."
)


@dataclass(frozen=True)
class Plan:
    action: HealingAction
    delay: float
    attempt: int  # steps in the window, this one included


def plan(policy: HealingPolicy, earlier: int, replaced: bool) -> Plan:
    """The next step after `earlier` restarts/replacements in the window."""
    if earlier < policy.budget:
        return Plan("restart", policy.delay(earlier), earlier + 1)
    if not replaced:
        return Plan("replace", policy.delay(earlier), earlier + 1)
    return Plan("give_up", 0.0, earlier)


@dataclass
class Slot:
    """One container's place in its service (for Swarm: the service) and its history."""

    key: str
    service: ServiceKey | None = None
    steps: collections.deque[tuple[float, HealingAction]] = field(default_factory=collections.deque)
    waiting: asyncio.Task[None] | None = None
    cause: str = ""  # "probe" or "exit": what the waiting step answers
    container: str = ""  # the name of the container the waiting step is for
    planned: HealingAction = "restart"  # the waiting step's action
    acting: bool = False
    gave_up: bool = False

    def prune(self, since: float) -> None:
        while self.steps and self.steps[0][0] < since:
            self.steps.popleft()

    @property
    def replaced(self) -> bool:
        return any(action == "replace" for _, action in self.steps)

    @property
    def busy(self) -> bool:
        return self.waiting is not None or self.acting


def slot_key(service: ServiceKey, container: ContainerInfo) -> str:
    if service.kind == "swarm":
        return format_service_key(service)
    return f"{container.node}/{container.name}" if container.node else container.name


class Healer:
    name = "healer"

    def __init__(self, ctx: DecisionContext, runner: ActionRunner, config: HealingConfig) -> None:
        self.runner = runner
        self.catalog = ctx.catalog
        self.store = ctx.store
        self.clock = ctx.clock
        self.bus = ctx.bus
        self.config = config
        self.dry_run = ctx.dry_run
        self.subscription = ctx.bus.subscribe(
            "healer",
            ContainerEvent,
            HealthChange,
            OperatorControls,
            OwnershipChange,
            EngineConnection,
            capacity=4096,
        )
        # Stops by someone else lately, by container id: (when, container, service). One
        # seen just before its engine's stream broke was the engine's shutdown: the
        # container is brought back when the engine is (`on_engine`).
        self._stops: dict[str, tuple[float, ContainerInfo, ServiceKey]] = {}
        self._lost: dict[str, tuple[ContainerInfo, ServiceKey]] = {}  # to an outage
        # Exits seen while this instance could not act on their service, by container id.
        self._awaiting: dict[str, tuple[ContainerInfo, ServiceKey, str, float | None]] = {}
        self.slots: dict[str, Slot] = {}
        self._bad_labels: set[str] = set()
        self._group: asyncio.TaskGroup | None = None
        self._deferred: list[ContainerEvent] = []
        self.paused: frozenset[str] = frozenset()
        # Probes failing now, by container id: a verdict is announced once, so one that
        # came while this instance could not act (a standby, a paused service) is taken
        # up again when it can.
        self._failing: dict[str, HealthChange] = {}
        self._restore()

    def _restore(self) -> None:
        # Steps scheduled when ebbflow stopped: taken when they were due, once the exited
        # container is found again (the first listing reports those).
        self.pending_at_start = self.store.pending_steps(self.dry_run)
        since = self.clock() - self.config.window
        for key, action, when in self.store.healing_since(since, self.dry_run):
            counted = COUNTED_STEPS.get(action)
            if counted is not None:
                self.slot(key).steps.append((when, counted))

    def slot(self, key: str, service: ServiceKey | None = None) -> Slot:
        slot = self.slots.setdefault(key, Slot(key))
        slot.service = service or slot.service
        return slot

    def under_way(self, service: ServiceKey) -> bool:
        """A step for one of the service's containers waits or runs."""
        return any(slot.service == service and slot.busy for slot in self.slots.values())

    def stand_down(self, key: str) -> None:
        """The container's node failed: a restart waiting for it would not help (the
        migrator moves it instead)."""
        slot = self.slots.get(key)
        if slot is not None and slot.waiting is not None and not slot.acting:
            slot.waiting.cancel()
            slot.waiting = None
            self.store.clear_pending(key)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            async for event in self.subscription:
                if isinstance(event, HealthChange):
                    self.on_health(event)
                elif isinstance(event, ContainerEvent):
                    self.on_container(event)
                elif isinstance(event, OperatorControls):
                    self.on_controls(event)
                elif isinstance(event, OwnershipChange) and event.acting:
                    self.on_owner()
                elif isinstance(event, EngineConnection):
                    self.on_engine(event)
            for slot in self.slots.values():
                if slot.waiting is not None and not slot.acting:
                    slot.waiting.cancel()

    def on_engine(self, event: EngineConnection) -> None:
        """Lost: the stops seen on it just before were its shutdown's. Back: what it stopped
        is brought back, with the usual backoff (Docker's own restart policy aside)."""
        node = event.node
        if not event.connected:
            for cid, (when, info, service) in list(self._stops.items()):
                if info.node == node and event.timestamp - when <= STOP_EVIDENCE:
                    self._lost[cid] = (info, service)
                    del self._stops[cid]
            return
        for cid, (info, service) in list(self._lost.items()):
            if info.node != node:
                continue
            del self._lost[cid]
            if self.catalog.service_of(cid) is None or cid in (
                known.replicas if (known := self.catalog.get(service)) else {}
            ):
                continue  # removed meanwhile, or running again
            if heals_exits(info.labels, info.restart_policy):
                self.failed(info, service, "exit", "stopped by an outage of its engine")

    def _remember_stop(self, info: ContainerInfo, service: ServiceKey, now: float) -> None:
        for cid, (when, _, _) in list(self._stops.items()):
            if now - when > STOP_EVIDENCE:
                del self._stops[cid]
        self._stops[info.id] = (now, info, service)

    def on_owner(self) -> None:
        """This instance may act now: exits found at start and probes that failed before
        wait for it; it continues their backoff and heals what is failing now."""
        deferred, self._deferred = self._deferred, []
        for event in deferred:
            self.on_container(event)
        self._take_up_failing(lambda service: True)
        awaiting, self._awaiting = self._awaiting, {}
        for cid, (info, service, reason, since) in awaiting.items():
            known = self.catalog.get(service)
            if known is not None and cid in known.exited:  # still exited: heal it now
                self.failed(info, service, "exit", reason, since=since or self.clock())

    def on_controls(self, controls: OperatorControls) -> None:
        """A service resumed: what failed while it was paused is healed now."""
        was_paused, self.paused = self.paused, controls.paused

        def resumed(service: ServiceKey) -> bool:
            return paused(was_paused, service) and not paused(self.paused, service)

        self._take_up_failing(resumed)

    def _take_up_failing(self, among: Callable[[ServiceKey], bool]) -> None:
        for change in list(self._failing.values()):
            if among(change.service):
                self.on_health(change)

    # -- failures and recoveries -----------------------------------------------------------
    def on_health(self, change: HealthChange) -> None:
        key = slot_key(change.service, change.container)
        if change.healthy:
            self._failing.pop(change.container.id, None)
            slot = self.slots.get(key)
            if slot is None:
                return
            self._clear(slot, "probe")
            if slot.gave_up:
                slot.gave_up = False
                self._note(
                    slot, change.service, change.container.name, "recovered", "probe healthy"
                )
            return
        self._failing[change.container.id] = change
        self.failed(change.container, change.service, "probe", f"probe failing ({change.reason})")

    def on_container(self, event: ContainerEvent) -> None:
        info = event.container
        service = service_key(info.labels, info.name)
        self._forget_verdicts(event)
        if event.kind is ContainerEventKind.START:
            slot = self.slots.get(slot_key(service, info))
            if slot is not None:
                self._clear(slot, "exit")
        elif (
            event.kind in (ContainerEventKind.STOP, ContainerEventKind.DESTROY)
            and service.kind != "swarm"  # Swarm stops and removes tasks itself
            and not self.runner.acted_on(info.id)
        ):
            self._by_someone_else(event, service)
        elif event.kind is ContainerEventKind.DESTROY:
            self._removed(service, info)
        elif event.kind is ContainerEventKind.DIE and event.detail == FOUND_EXITED:
            self._found_exited(event, service)
        elif event.kind is ContainerEventKind.DIE and event.detail != "missing":
            if service.kind == "swarm" or not heals_exits(info.labels, info.restart_policy):
                return
            if self.runner.stopped_by_us(info.id):
                return
            self.failed(info, service, "exit", event.detail or "exited")

    def _forget_verdicts(self, event: ContainerEvent) -> None:
        cid = event.container.id
        if event.kind in (
            ContainerEventKind.DIE,
            ContainerEventKind.STOP,
            ContainerEventKind.DESTROY,
        ):
            self._failing.pop(cid, None)  # not probed any more: its verdict is stale
        if event.kind is not ContainerEventKind.DIE:
            self._awaiting.pop(cid, None)  # started again, or stopped/removed by hand

    def _by_someone_else(self, event: ContainerEvent, service: ServiceKey) -> None:
        info = event.container
        if event.kind is ContainerEventKind.STOP:
            known = self.catalog.service_of(info.id)
            self._remember_stop(self._labelled(info), known or service, event.timestamp)
        else:
            self._stops.pop(info.id, None)
            self._lost.pop(info.id, None)
        self._by_the_operator(service, info, event.kind)

    def _labelled(self, info: ContainerInfo) -> ContainerInfo:
        """The container as last seen running (a stop event carries no restart policy)."""
        key = self.catalog.service_of(info.id)
        known = self.catalog.get(key) if key is not None else None
        if known is not None and info.id in known.exited:
            return known.exited[info.id]
        return info

    def _found_exited(self, event: ContainerEvent, service: ServiceKey) -> None:
        info = event.container
        if not self.catalog.owns(service):
            self._deferred.append(event)  # for when this instance may act
            return
        failed_at = self.pending_at_start.pop(slot_key(service, info), None)
        if failed_at is not None and heals_exits(info.labels, info.restart_policy):
            reason = f"exited (found at start; a step was due {failed_at:.0f})"
            self.failed(info, service, "exit", reason, since=failed_at)

    def _removed(self, service: ServiceKey, info: ContainerInfo) -> None:
        slot = self.slots.get(slot_key(service, info))
        if slot is not None and slot.gave_up and not slot.acting:
            # Given up on, then removed: nothing is failing any more (the desired count
            # brings a replacement), so its alert resolves, and a container that takes its
            # name starts with a fresh budget.
            del self.slots[slot.key]
            self._note(slot, service, info.name, "recovered", "container removed")
        elif slot is not None and slot.waiting is None and not slot.steps:
            del self.slots[slot.key]  # nothing to remember of it

    def _by_the_operator(
        self, service: ServiceKey, info: ContainerInfo, kind: ContainerEventKind
    ) -> None:
        """Someone else stopped or removed the container on purpose: nothing to heal. A step
        waiting for it is called off; an alert for it resolves."""
        slot = self.slots.get(slot_key(service, info))
        if slot is None or slot.acting:
            return
        if slot.waiting is not None:
            slot.waiting.cancel()
            slot.waiting = None
            self.store.clear_pending(slot.key)
            how = "removed" if kind is ContainerEventKind.DESTROY else "stopped"
            log.info(
                "container %s was %s through the API: its pending %s is called off (brought "
                "back if that was its engine going away)",
                info.name,
                how,
                slot.cause,
            )
        del self.slots[slot.key]
        if slot.gave_up:
            why = "container removed" if kind is ContainerEventKind.DESTROY else "stopped by hand"
            self._note(slot, service, info.name, "recovered", why)

    def _clear(self, slot: Slot, cause: str) -> None:
        """The failure went away by itself: the step that waits for it is not needed."""
        if slot.waiting is not None and not slot.acting and slot.cause == cause:
            slot.waiting.cancel()
            slot.waiting = None
            self.store.clear_pending(slot.key)
            if slot.service is not None:
                now = self.clock()
                self.bus.publish(HealingScheduled(slot.service, slot.container, slot.planned,
                                                  f"{cause} cleared", 0, None, now))  # fmt: skip

    def healing_policy(self, info: ContainerInfo, service: ServiceKey) -> HealingPolicy | None:
        """The container's healing policy; None (logged once) when it may not be healed."""
        known = self.catalog.get(service)
        policy_errors = known.policy.errors if known is not None else ()
        if policy_errors:  # a service with an invalid policy is left alone entirely
            self._bad_label(
                info, f"not healed: its service's policy is invalid: {'; '.join(policy_errors)}"
            )
            return None
        policy, errors = parse_healing(info.labels, self.config)
        if policy is None:
            self._bad_label(info, "not healed: " + "; ".join(errors))
        return policy

    def _bad_label(self, info: ContainerInfo, message: str) -> None:
        if info.name not in self._bad_labels:
            self._bad_labels.add(info.name)
            log.error("container %s: %s", info.name, message)

    def failed(
        self,
        info: ContainerInfo,
        service: ServiceKey,
        cause: str,
        reason: str,
        since: float | None = None,
    ) -> None:
        """`since`: when it failed, if before now (a step restored after a restart)."""
        if not self.config.enabled or not self.catalog.covers(info):
            return  # outside the scope ebbflow monitors, never acts
        if not self.catalog.owns(service):
            if cause == "exit":  # a standby, or not claimed yet: taken up when it may act
                self._awaiting[info.id] = (info, service, reason, since)
                while len(self._awaiting) > MAX_AWAITING:
                    del self._awaiting[next(iter(self._awaiting))]
            return
        if self.catalog.paused(service):
            log.info("container %s: %s; not healed: its service is paused", info.name, reason)
            return
        policy = self.healing_policy(info, service)
        if policy is None or policy.action == "none":
            return
        slot = self.slot(slot_key(service, info), service)
        now = self.clock()
        slot.prune(now - policy.window)
        if slot.waiting is not None or slot.gave_up:
            return  # one step at a time; after giving up, only recovery counts
        step = plan(policy, len(slot.steps), slot.replaced)
        if step.action == "give_up":
            slot.gave_up = True
            log.error(
                "container %s: %s after %d steps in %gs: giving up",
                info.name,
                reason,
                len(slot.steps),
                policy.window,
            )
            self._note(slot, service, info.name, "give_up", reason, step.attempt)
            return
        failed_at = now if since is None else since
        step = Plan(step.action, max(0.0, failed_at + step.delay - now), step.attempt)
        log.warning(
            "container %s: %s; %s in %gs (step %d)",
            info.name,
            reason,
            step.action,
            round(step.delay, 1),
            step.attempt,
        )
        assert self._group is not None, "failed() is called from run()"
        self.store.record_pending(slot.key, failed_at, self.dry_run)
        slot.cause = cause
        slot.container, slot.planned = info.name, step.action
        slot.waiting = self._group.create_task(
            self._later(slot, info, service, step, reason, policy)
        )
        self.bus.publish(HealingScheduled(service, info.name, step.action, reason,
                                          step.attempt, now + step.delay, now))  # fmt: skip

    async def _later(
        self,
        slot: Slot,
        info: ContainerInfo,
        service: ServiceKey,
        step: Plan,
        reason: str,
        policy: HealingPolicy,
    ) -> None:
        try:
            await asyncio.sleep(step.delay)
            while self.catalog.blocked():  # noqa: ASYNC110 (the state file is polled, not signalled)
                await asyncio.sleep(BLOCKED_RECHECK)
            self.store.clear_pending(slot.key)  # taken now (a stop before keeps it pending)
            slot.acting = True
            replaced = slot.replaced or step.action == "replace"
            after = plan(policy, len(slot.steps) + 1, replaced)
            action = HealAction(
                service,
                info,
                step.action,
                reason,
                step.attempt,
                slot.key,
                after.delay if after.action != "give_up" else None,
            )
            outcome = await self.runner.execute(action)
            if not outcome.refused:  # a step never taken spends none of the budget
                slot.steps.append((self.clock(), step.action))
        finally:
            slot.acting = False
            if slot.waiting is asyncio.current_task():
                slot.waiting = None

    def _note(
        self,
        slot: Slot,
        service: ServiceKey,
        container: str,
        action: HealingAction,
        reason: str,
        attempt: int = 0,
    ) -> None:
        """A verdict that is no action (give up, recovered), in the same log as actions."""
        step = HealingStep(
            service, container, action, reason, attempt, True, reason, self.clock(), self.dry_run
        )
        self.runner.note(step, slot.key)

    # -- telemetry -------------------------------------------------------------------------
    def telemetry(self, now: float) -> Iterable[Sample]:
        """Healing's metrics; the steps are counted where they are taken (the runner)."""
        for (service, action, outcome), count in sorted(self.runner.steps.items()):
            yield HEALING_STEPS.sample(count, now, action, outcome, service)
        yield GIVEN_UP.sample(sum(1 for slot in self.slots.values() if slot.gave_up), now)
