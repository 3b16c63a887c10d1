"""Recovery of failing containers, like a crash-loop backoff.

A container fails when its probe turns unhealthy, or when it exits while a policy claims
it and Docker's restart policy does not. Each failure schedules one step after a backoff
that doubles with every step in the budget window (10 s, 20 s, ... up to 5 min by
default): a restart in place while the budget lasts, then one replacement by a fresh
container, then ebbflow gives up on it and says so (an alert that resolves when the
container is healthy again). Steps are recorded, so a restart of ebbflow continues a crash
loop's backoff instead of starting it over. A failure that clears during the wait (the
probe passes again, someone started the container) cancels the step. Only the instance
holding the lease acts; one that takes the lease over heals what is failing then (a probe
verdict is announced once, so one seen as a standby is kept until it clears).

Swarm services are healed per service: Swarm replaces dead tasks itself, and a forced
update is how a failing one is restarted.

With several nodes, a container whose node is at fault (its engine stopped answering,
or its pressure limits were passed) is migrated at once instead: recreated on the
healthy node with the fewest of its service. The move is recorded, and the original is
removed when its node answers again, so nothing is left behind. Migrations do not count
against the restart budget: the container was not at fault.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ebbflow.bus import Bus
from ebbflow.config import HealingConfig, HealingPolicy, RulesConfig, ScopeConfig
from ebbflow.controls import paused
from ebbflow.healing_policy import DOCKER_RESTARTS, heals_exits, is_managed, parse_healing
from ebbflow.model import (
    FOUND_EXITED,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    HealingAction,
    HealingStep,
    HealthChange,
    NodeHealthChange,
    OperatorControls,
    Sample,
    ServiceKey,
    labels_of,
)
from ebbflow.nodes import Nodes
from ebbflow.plugins import Actuator, WatchesNodes
from ebbflow.policy import effective_labels, parse_policy
from ebbflow.services import format_service_key, service_key
from ebbflow.state import DecisionStore, Leftover

from .safety import ActionGate

log = logging.getLogger("ebbflow.scaler.healing")


COUNTED_STEPS: dict[str, HealingAction] = {"restart": "restart", "replace": "replace"}


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
    acting: bool = False
    gave_up: bool = False

    def prune(self, since: float) -> None:
        while self.steps and self.steps[0][0] < since:
            self.steps.popleft()

    @property
    def replaced(self) -> bool:
        return any(action == "replace" for _, action in self.steps)


def slot_key(service: ServiceKey, container: ContainerInfo) -> str:
    if service.kind == "swarm":
        return format_service_key(service)
    return f"{container.node}/{container.name}" if container.node else container.name


class Healer:
    name = "healer"

    def __init__(
        self,
        bus: Bus,
        actuators: Sequence[Actuator],
        gate: ActionGate,
        store: DecisionStore,
        clock: Callable[[], float],
        config: HealingConfig,
        dry_run: bool = False,
        action_timeout: float = 120.0,
        nodes: Nodes | None = None,
        scope: ScopeConfig | None = None,
        rules: RulesConfig | None = None,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.bus = bus
        self.may_act = may_act
        self.scope = scope or ScopeConfig()
        self.rules = rules or RulesConfig()
        self.actuators = list(actuators)
        self.gate = gate
        self.store = store
        self.clock = clock
        self.config = config
        self.dry_run = dry_run
        self.action_timeout = action_timeout
        self.nodes = nodes
        self.subscription = bus.subscribe(
            "healer",
            ContainerEvent,
            HealthChange,
            NodeHealthChange,
            OperatorControls,
            capacity=4096,
        )
        self.paused: frozenset[str] = frozenset()
        self.slots: dict[str, Slot] = {}
        # By node, the containers ebbflow would move if the node failed: running ones, and
        # stopped ones that Docker or ebbflow is to bring back.
        self.placed: collections.defaultdict[str, dict[str, ContainerInfo]] = (
            collections.defaultdict(dict)
        )
        self.counts: collections.Counter[tuple[str, str, bool]] = collections.Counter()
        self._bad_labels: set[str] = set()
        self._group: asyncio.TaskGroup | None = None
        self._deferred: list[ContainerEvent] = []
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
                self._slot(key).steps.append((when, counted))

    def _slot(self, key: str, service: ServiceKey | None = None) -> Slot:
        slot = self.slots.setdefault(key, Slot(key))
        slot.service = service or slot.service
        return slot

    def under_way(self, service: ServiceKey) -> bool:
        """A step for one of the service's containers waits or runs."""
        return any(
            slot.service == service and (slot.waiting is not None or slot.acting)
            for slot in self.slots.values()
        )

    async def _when_leader(self) -> None:
        """Exits found at start, and probes and nodes that failed before this instance held
        the lease, wait for it: the leader continues their backoff and heals what is
        failing now."""
        leading = False
        while True:
            await asyncio.sleep(0.5)
            was_leading, leading = leading, self.may_act()
            if not leading:
                continue
            if self._deferred:
                deferred, self._deferred = self._deferred, []
                for event in deferred:
                    self.on_container(event)
            if not was_leading:
                self._take_up_failing(lambda service: True)
                self._take_up_faulty_nodes()

    def _take_up_failing(self, among: Callable[[ServiceKey], bool]) -> None:
        for change in list(self._failing.values()):
            if among(change.service):
                self.on_health(change)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            deferring = group.create_task(self._when_leader())
            async for event in self.subscription:
                if isinstance(event, HealthChange):
                    self.on_health(event)
                elif isinstance(event, ContainerEvent):
                    self.on_container(event)
                elif isinstance(event, NodeHealthChange):
                    self.on_node(event)
                elif isinstance(event, OperatorControls):
                    self.on_controls(event)
            deferring.cancel()
            for slot in self.slots.values():
                if slot.waiting is not None and not slot.acting:
                    slot.waiting.cancel()

    def on_controls(self, controls: OperatorControls) -> None:
        """A service resumed: what failed while it was paused is healed now."""
        was_paused, self.paused = self.paused, controls.paused

        def resumed(service: ServiceKey) -> bool:
            return paused(was_paused, service) and not paused(self.paused, service)

        self._take_up_failing(resumed)

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
                self._publish(
                    slot, change.service, change.container.name, "recovered", "probe healthy", 0
                )
            return
        self._failing[change.container.id] = change
        self.failed(change.container, change.service, "probe", f"probe failing ({change.reason})")

    def on_container(self, event: ContainerEvent) -> None:
        info = event.container
        service = service_key(info.labels, info.name)
        self._track(event, service)
        if event.kind in (
            ContainerEventKind.DIE,
            ContainerEventKind.STOP,
            ContainerEventKind.DESTROY,
        ):
            self._failing.pop(info.id, None)  # not probed any more: its verdict is stale
        if event.kind is ContainerEventKind.START:
            slot = self.slots.get(slot_key(service, info))
            if slot is not None:
                self._clear(slot, "exit")
        elif (
            event.kind in (ContainerEventKind.STOP, ContainerEventKind.DESTROY)
            and service.kind != "swarm"  # Swarm stops and removes tasks itself
            and not any(a.acted_on(info.id) for a in self.actuators)
        ):
            self._by_the_operator(service, info, event.kind)
        elif event.kind is ContainerEventKind.DESTROY:
            slot = self.slots.get(slot_key(service, info))
            if slot is not None and slot.gave_up and not slot.acting:
                # Given up on, then removed: nothing is failing any more (the desired count
                # brings a replacement), so its alert resolves, and a container that
                # takes its name starts with a fresh budget.
                del self.slots[slot.key]
                self._publish(slot, service, info.name, "recovered", "container removed", 0)
            elif slot is not None and slot.waiting is None and not slot.steps:
                del self.slots[slot.key]  # nothing to remember of it
        elif event.kind is ContainerEventKind.DIE and event.detail == FOUND_EXITED:
            if not self.may_act():
                self._deferred.append(event)  # for when this instance holds the lease
                return
            failed_at = self.pending_at_start.pop(slot_key(service, info), None)
            if failed_at is not None and heals_exits(info.labels, info.restart_policy):
                reason = f"exited (found at start; a step was due {failed_at:.0f})"
                self.failed(info, service, "exit", reason, since=failed_at)
        elif event.kind is ContainerEventKind.DIE and event.detail != "missing":
            if service.kind == "swarm" or not heals_exits(info.labels, info.restart_policy):
                return
            if any(a.stopped_by_us(info.id) for a in self.actuators):
                return
            self.failed(info, service, "exit", event.detail or "exited")

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
                "container %s was %s by hand: its pending %s is called off",
                info.name,
                how,
                slot.cause,
            )
        del self.slots[slot.key]
        if slot.gave_up:
            why = "container removed" if kind is ContainerEventKind.DESTROY else "stopped by hand"
            self._publish(slot, service, info.name, "recovered", why, 0)

    def _track(self, event: ContainerEvent, service: ServiceKey) -> None:
        info = event.container
        if not info.node or service.kind == "swarm":
            return  # one engine (nowhere to move to), or Swarm (it reschedules itself)
        placed = self.placed[info.node]
        if event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            if is_managed(info.labels):
                placed[info.id] = info
        elif event.kind is ContainerEventKind.DESTROY or (
            event.kind is ContainerEventKind.DIE
            and info.id in placed
            and not heals_exits(placed[info.id].labels, placed[info.id].restart_policy)
            and placed[info.id].restart_policy not in DOCKER_RESTARTS
        ):
            placed.pop(info.id, None)

    def on_node(self, change: NodeHealthChange) -> None:
        for actuator in self.actuators:
            if isinstance(actuator, WatchesNodes):
                self._spawn(self._node_hook(actuator, change))
        if not change.healthy:
            for info in list(self.placed[change.node].values()):
                service = service_key(info.labels, info.name)
                self.failed(info, service, "node", f"node {change.node} {change.reason}")
            return
        for leftover in self.store.leftovers(change.node):
            self._spawn(self._remove_leftover(leftover))
        # Containers that found no healthy node before may find this one.
        assert self.nodes is not None, "node changes come from the monitor of these nodes"
        self._take_up_faulty_nodes()

    def _take_up_faulty_nodes(self) -> None:
        nodes = self.nodes
        if nodes is None:
            return  # one engine: no node to be at fault
        for node, placed in self.placed.items():
            if not nodes.healthy(node):
                for info in list(placed.values()):
                    service = service_key(info.labels, info.name)
                    self.failed(info, service, "node", f"node {node} {nodes.fault(node)}")

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        assert self._group is not None, "called from run()"
        self._group.create_task(job)

    async def _node_hook(self, actuator: WatchesNodes, change: NodeHealthChange) -> None:
        """An actuator's own answer to a node's health (Swarm drains the node); one that
        raises is logged, not fatal."""
        node_service = ServiceKey("node", change.node)
        slot = self._slot(f"node:{change.node}")
        ok = True
        try:
            async with self.gate.turn(node_service):
                detail = await actuator.node_changed(change, dry_run=self.dry_run)
        except Exception as err:
            detail, ok = f"{type(err).__name__}: {err}", False
        if detail is None:
            return
        action: HealingAction = "drain" if not change.healthy else "activate"
        self._publish(slot, node_service, change.node, action, change.reason, 0, ok, detail)

    async def _remove_leftover(self, leftover: Leftover) -> None:
        info = ContainerInfo(leftover.container_id, leftover.container, "", node=leftover.node)
        slot = self._slot(slot_key(leftover.service, info), leftover.service)
        async with self.gate.turn(leftover.service):
            ok, detail = await self._act(info, leftover.service, "remove_leftover")
        if ok:
            self.store.leftover_removed(leftover.container_id, self.clock())
        self.slots.pop(slot.key, None)
        self._publish(
            slot,
            leftover.service,
            leftover.container,
            "remove_leftover",
            f"node {leftover.node} answers again",
            0,
            ok,
            detail,
        )

    def _clear(self, slot: Slot, cause: str) -> None:
        """The failure went away by itself: the step that waits for it is not needed."""
        if slot.waiting is not None and not slot.acting and slot.cause == cause:
            slot.waiting.cancel()
            slot.waiting = None
            self.store.clear_pending(slot.key)

    def failed(
        self,
        info: ContainerInfo,
        service: ServiceKey,
        cause: str,
        reason: str,
        since: float | None = None,
    ) -> None:
        """`since`: when it failed, if before now (a step restored after a restart)."""
        if not self.config.enabled or not self.scope.covers(info.labels):
            return  # outside the scope ebbflow monitors, never acts
        if not self.may_act():
            return  # a standby: the leader heals
        if paused(self.paused, service):
            log.info("container %s: %s; not healed: its service is paused", info.name, reason)
            return
        labels = effective_labels(info.labels, str(service), service.name, self.rules.policies)
        policy_errors = parse_policy(labels, self.rules).errors
        if policy_errors:  # a service with an invalid policy is left alone entirely
            if info.name not in self._bad_labels:
                self._bad_labels.add(info.name)
                log.error(
                    "container %s: not healed: its service's policy is invalid: %s",
                    info.name,
                    "; ".join(policy_errors),
                )
            return
        policy, errors = parse_healing(info.labels, self.config)
        if policy is None:
            if info.name not in self._bad_labels:
                self._bad_labels.add(info.name)
                log.error("container %s: not healed: %s", info.name, "; ".join(errors))
            return
        if policy.action == "none":
            return
        slot = self._slot(slot_key(service, info), service)
        now = self.clock()
        slot.prune(now - policy.window)
        if cause == "node":
            if slot.acting or slot.gave_up or (slot.waiting is not None and slot.cause == "node"):
                return
            if slot.waiting is not None:
                slot.waiting.cancel()  # a restart on a node at fault would not help
            step = Plan("migrate", 0.0, len(slot.steps))
        elif slot.waiting is not None or slot.gave_up:
            return  # one step at a time; after giving up, only recovery counts
        else:
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
            self._publish(slot, service, info.name, "give_up", reason, step.attempt)
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
        slot.waiting = self._group.create_task(
            self._later(slot, info, service, step, reason, policy)
        )

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
            self.store.clear_pending(slot.key)  # taken now (a stop before keeps it pending)
            if self._stranded(info):
                step = Plan("migrate", 0.0, step.attempt)  # the node failed while we waited
            slot.acting = True
            async with self.gate.turn(service):
                ok, detail = await self._act(info, service, step.action)
            if step.action == "migrate":
                self._migrated(slot, info, service, reason, ok, detail)
                return
            slot.steps.append((self.clock(), step.action))
            after = plan(policy, len(slot.steps), slot.replaced)
            self._publish(
                slot,
                service,
                info.name,
                step.action,
                reason,
                step.attempt,
                ok,
                detail,
                after.delay if after.action != "give_up" else None,
            )
        finally:
            slot.acting = False
            if slot.waiting is asyncio.current_task():
                slot.waiting = None
        if self._stranded(info):
            # Its node failed while this restart was under way: move it now.
            assert self.nodes is not None
            self.failed(info, service, "node", f"node {info.node} {self.nodes.fault(info.node)}")

    def _stranded(self, info: ContainerInfo) -> bool:
        """On a node at fault, and one of those ebbflow moves (see `_track`)."""
        return (
            self.nodes is not None
            and info.id in self.placed[info.node]
            and not self.nodes.healthy(info.node)
        )

    def _migrated(
        self,
        slot: Slot,
        info: ContainerInfo,
        service: ServiceKey,
        reason: str,
        ok: bool,
        detail: str,
    ) -> None:
        if ok and not self.dry_run:
            # Recorded first: the original is removed when its node answers, even after a
            # restart of ebbflow. The new container is a new slot on its own node.
            self.store.record_migration(
                service, info.id, info.name, info.node, detail, self.clock()
            )
            self.placed[info.node].pop(info.id, None)
        self._publish(slot, service, info.name, "migrate", reason, len(slot.steps), ok, detail)
        if ok and not self.dry_run:
            self.slots.pop(slot.key, None)

    async def _act(
        self, info: ContainerInfo, service: ServiceKey, action: HealingAction
    ) -> tuple[bool, str]:
        if self.dry_run:
            return True, f"dry run: would {action} {info.name}"
        actuator = next((a for a in self.actuators if a.can_heal(service)), None)
        if actuator is None:
            return False, f"no actuator heals {service.kind} services"
        try:
            async with asyncio.timeout(self.action_timeout):
                return True, await actuator.heal(service, info, action)
        except Exception as err:
            why = "timed out" if isinstance(err, TimeoutError) else f"{type(err).__name__}: {err}"
            return False, why

    def _publish(
        self,
        slot: Slot,
        service: ServiceKey,
        container: str,
        action: HealingAction,
        reason: str,
        attempt: int,
        ok: bool = True,
        detail: str = "",
        next_delay: float | None = None,
    ) -> None:
        step = HealingStep(
            service,
            container,
            action,
            reason,
            attempt,
            ok,
            detail or reason,
            self.clock(),
            self.dry_run,
            next_delay,
        )
        self.store.record_step(step, slot.key)
        self.counts[(str(service), action, ok)] += 1
        if ok:
            log.info("container %s: %s: %s", container, action, step.detail)
        else:
            log.error("container %s: %s failed: %s", container, action, step.detail)
        self.bus.publish(step)

    # -- telemetry -------------------------------------------------------------------------
    def telemetry(self, now: float) -> Iterable[Sample]:
        for (service, action, ok), count in sorted(self.counts.items()):
            yield Sample(
                "ebbflow_healing_steps_total",
                count,
                labels_of(
                    {"service": service, "action": action, "outcome": "ok" if ok else "failed"}
                ),
                now,
                "counter",
                "Healing steps taken (restart, replace, give_up, recovered), by service.",
            )
        yield Sample(
            "ebbflow_healing_given_up",
            sum(1 for slot in self.slots.values() if slot.gave_up),
            (),
            now,
            "gauge",
            "Containers ebbflow stopped healing after their budget ran out.",
        )
