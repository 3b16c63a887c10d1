"""Keeping plain-engine services at their desired replica count (reconcile/desired.py).

When the replicas running on healthy nodes stay off that count for a grace period while
nothing else acts on the service (no decision under way, no healing step pending, no
leftover of a migration to remove), the reconciler decides the difference back: a replica
that died and that neither Docker nor healing brings back is replaced, a service started
short is brought up, a surplus is removed (unhealthy replicas first, then the newest).
Removals by someone else are read as intent (reconcile/intent.py); after a redeploy,
ebbflow's copies are rolled onto the new configuration (reconcile/rollover.py).

Its decisions go through the action runner like a policy's (the action gate, dry run, the
record, alerts), marked `origin=reconcile` so they start no cooldown. One that fails, or
that the count does not follow, is tried again after a doubling delay; in a dry run each
mismatch is reported once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable, Sequence
from types import MappingProxyType

from ebbflow.catalog import Service
from ebbflow.config import ReconcileConfig
from ebbflow.context import DecisionContext
from ebbflow.controls import ControlsWatch, paused
from ebbflow.metrics import Desc
from ebbflow.model import (
    FOUND_EXITED,
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    DecisionOrigin,
    EngineConnection,
    OperatorControls,
    OwnershipChange,
    Sample,
    ServiceKey,
    ServiceRetired,
)
from ebbflow.plugins import Actuator
from ebbflow.services import CREATED_BY_LABEL

from .desired import Tracked
from .reading import IntentReader
from .rollover import defined_by_copies, outdated

log = logging.getLogger("ebbflow.scaler.reconcile")

MAX_RETRY_DELAY = 300.0

DESIRED = Desc(
    "ebbflow_service_replicas_desired",
    "The replica count ebbflow keeps a plain-engine service at.",
    "gauge",
    ("service",),
)
RETIRED = Desc(
    "ebbflow_service_retired",
    "1 while a service is retired: its operator removed every replica.",
    "gauge",
    ("service",),
)
RECONCILIATIONS = Desc(
    "ebbflow_reconciliations_total",
    "Decisions that brought a service back to its desired replica count.",
    "counter",
    ("direction", "service"),
)


class Reconciler:
    name = "reconciler"

    def __init__(
        self,
        ctx: DecisionContext,
        actuators: Sequence[Actuator],
        config: ReconcileConfig,
        healing_under_way: Callable[[ServiceKey], bool] = lambda _: False,
        acted_on: Callable[[str], bool] = lambda _: False,
        controls: ControlsWatch | None = None,
    ) -> None:
        self.bus = ctx.bus
        self.catalog = ctx.catalog
        self.nodes = ctx.nodes
        self.store = ctx.store
        self.actuators = list(actuators)
        self.clock = ctx.clock
        self.config = config
        self.dry_run = ctx.dry_run
        self.healing_under_way = healing_under_way
        self.acted_on = acted_on  # whether ebbflow itself stopped or removed a container
        self.intent = IntentReader(ctx, config, self.count, self._retire, controls)
        self.subscription = ctx.bus.subscribe(
            "reconciler",
            ContainerEvent,
            Decision,
            ActionResult,
            OperatorControls,
            OwnershipChange,
            EngineConnection,
            capacity=4096,
        )
        self.services: dict[ServiceKey, Tracked] = {}
        self.in_flight: set[ServiceKey] = set()
        self.retired: set[ServiceKey] = set()
        self.decisions: collections.Counter[tuple[str, str]] = collections.Counter()

    async def run(self) -> None:
        if not self.config.enabled:
            return
        async with asyncio.TaskGroup() as group:
            checks = group.create_task(self._checks())
            async for event in self.subscription:
                self.handle(event)
            checks.cancel()  # the bus closed

    async def _checks(self) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            self.check()

    # -- what happens to services ----------------------------------------------------------
    def handle(self, event: object) -> None:
        if isinstance(event, ContainerEvent):
            self.on_container(event)
        elif isinstance(event, Decision):
            self.in_flight.add(event.service)
            self._settle(event.service)
        elif isinstance(event, ActionResult):
            self.on_result(event)
        elif isinstance(event, OperatorControls):
            for tracked in self.services.values():
                if paused(event.forgotten, tracked.key):
                    tracked.decided = tracked.operator = None
            self.intent.end_fights(event)
        elif isinstance(event, OwnershipChange) and not event.acting:
            for tracked in self.services.values():
                tracked.off_since = None  # a grace period starts when this one may act
        elif isinstance(event, EngineConnection) and not event.connected:
            self.intent.outage(event, self.services)

    def _manages(self, service: Service | None) -> bool:
        """Swarm keeps its own count; a lone container has none; outside the scope
        ebbflow only monitors."""
        if service is None or not service.in_scope:
            return False
        key = service.key
        return key.kind != "swarm" and any(a.supports(key) for a in self.actuators)

    def on_container(self, event: ContainerEvent) -> None:
        info = event.container
        key = self.catalog.service_of(info.id)
        service = self.catalog.get(key) if key is not None else None
        if key is None or service is None or not self._manages(service):
            return
        if event.kind is ContainerEventKind.DIE and event.detail == FOUND_EXITED:
            self._found_exited(service)
        elif event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            self._started(service, info, event.timestamp)
        elif event.kind is ContainerEventKind.DIE:
            self._settle(key)
        elif event.kind in (ContainerEventKind.STOP, ContainerEventKind.DESTROY):
            self._stopped(service, event)

    def _started(self, service: Service, info: ContainerInfo, when: float) -> None:
        key = service.key
        tracked = self.services.get(key)
        if tracked is None:
            tracked = self.services[key] = self._track(key)
        new = info.id not in tracked.seen  # else a restart
        tracked.seen.add(info.id)
        self.intent.started(tracked, info, CREATED_BY_LABEL in info.labels, new, when)
        self._redefine(tracked, service)
        self._follow_the_owner(tracked, service)
        self._settle(key)

    def _found_exited(self, service: Service) -> None:
        """At start, a service whose replicas exited while no ebbflow watched (an engine
        restart, a host reboot): restored to what ebbflow kept it at, when it kept it at
        all and it was not retired. What happened meanwhile is re-read from the engine,
        never guessed as intent."""
        key = service.key
        if key in self.services or key in self.retired:
            return
        last = self.store.last_carried_out(key)
        kept = self.store.desired(key)
        if not kept or (last is not None and last == (0, "operator")):
            return
        tracked = self.services[key] = self._track(key)
        policy = service.policy.policy if service.policy.ok else None
        tracked.follow_policy(policy)
        log.info(
            "service %s: found with every replica exited; desired count %s: restoring",
            key,
            tracked.desired(),
        )

    def _stopped(self, service: Service, event: ContainerEvent) -> None:
        """Stopped or removed: by ebbflow (nothing to read), else held to be read."""
        tracked = self.services.get(service.key)
        if tracked is None:
            return
        info = event.container
        if event.kind is ContainerEventKind.DESTROY:
            tracked.seen.discard(info.id)
        if not self.catalog.owns(service.key):
            self._follow_the_owner(tracked, service)
        elif not self.acted_on(info.id):
            removed = event.kind is ContainerEventKind.DESTROY
            if self.intent.hold(tracked, info, removed, event.timestamp):
                self._redefine(tracked, service)
        self._settle(service.key)

    def _redefine(self, tracked: Tracked, service: Service) -> None:
        """The replica that defines the service may have changed: its policy, its
        configuration (a redeploy ends a hold at once), its declared count."""
        if service.definer is None or not service.replicas:
            return
        policy = service.policy.policy if service.policy.ok else None
        if tracked.follow_policy(policy):
            log.info("service %s: declared replica count now %s", tracked.key, tracked.declared)
        source = service.definer
        if source.configuration and source.configuration != tracked.configuration:
            if tracked.configuration:
                log.info(
                    "service %s: new configuration %s (was %s), defined by %s",
                    tracked.key,
                    source.configuration,
                    tracked.configuration,
                    source.name,
                )
            tracked.configuration = source.configuration
        self.intent.redeployed(tracked)

    def _follow_the_owner(self, tracked: Tracked, service: Service) -> None:
        """A standby takes the count the owner keeps as its own, so a takeover keeps it
        (the engine is the source of truth; the owner's state file may be elsewhere)."""
        if not self.catalog.owns(tracked.key) and service.replicas:
            tracked.decided, tracked.operator = service.count, None

    def _track(self, key: ServiceKey) -> Tracked:
        """A service seen (again): its desired count from what was last carried out. One
        that was retired, or whose last word was its retirement, starts over from what its
        labels declare."""
        revived = key in self.retired
        self.retired.discard(key)
        last = self.store.last_carried_out(key)
        tracked = Tracked(key)
        if revived or last is None or last[0] == 0:
            pass
        elif last[1] == "operator":
            tracked.operator = last[0]
        else:
            tracked.decided = last[0]
        if revived:
            log.info("service %s: a replica started again; managed again", key)
            self.bus.publish(ServiceRetired(key, False, "a replica started", self.clock()))
        return tracked

    def _retire(self, tracked: Tracked, why: str) -> None:
        key = tracked.key
        log.info("service %s retired: %s; left alone until a replica starts again", key, why)
        del self.services[key]
        self.retired.add(key)
        self.store.record_desired(key, None, self.clock())
        self.bus.publish(ServiceRetired(key, True, why, self.clock()))

    def on_result(self, result: ActionResult) -> None:
        decision = result.decision
        self.in_flight.discard(decision.service)
        tracked = self.services.get(decision.service)
        if tracked is None:
            return
        if decision.origin == "rollover":
            if not result.ok:  # its new copy would not run: no copy after copy of it
                tracked.roll_blocked = tracked.configuration
                log.error("service %s: rollover stopped: %s", decision.service, result.detail)
        elif result.ok and not decision.dry_run:
            tracked.decided, tracked.operator = decision.to_replicas, None
            tracked.below_min_said = False
        self._settle(decision.service)

    def _settle(self, key: ServiceKey) -> None:
        """Something happened to the service: its grace period starts over."""
        tracked = self.services.get(key)
        if tracked is not None and tracked.off_since is not None:
            tracked.off_since = self.clock()

    # -- the check -------------------------------------------------------------------------
    def count(self, tracked: Tracked) -> int:
        """Replicas on healthy nodes; a guest (compose labels put on by hand) is none."""
        service = self.catalog.get(tracked.key)
        return service.counted(self.nodes.healthy) if service is not None else 0

    def check(self) -> list[Decision]:
        now = self.clock()
        decided: list[Decision] = []
        if self.catalog.blocked():  # nothing is decided that could not be recorded
            for tracked in self.services.values():
                tracked.off_since = None
            return decided
        for tracked in list(self.services.values()):
            if not self.catalog.owns(tracked.key):
                tracked.off_since = None  # a grace period starts when this one may act
                continue
            decision = self._check_one(tracked, now)
            if decision is not None:
                decided.append(decision)
        return decided

    def _engines_away(self, tracked: Tracked) -> bool:
        """An engine the service runs on is not connected: its count is not known, and
        nothing done there would land; the grace period starts when it is back."""
        service = self.catalog.get(tracked.key)
        if service is None:
            return False
        nodes = service.nodes or ({service.definer.node} if service.definer else set())
        return any(not self.catalog.connected(node) for node in nodes)

    def _follow_catalog(self, tracked: Tracked) -> None:
        """The service's policy as the catalog has it now (a reload may have changed it)."""
        service = self.catalog.get(tracked.key)
        if service is not None and tracked.follow_policy(
            service.policy.policy if service.policy.ok else None
        ):
            log.info("service %s: declared replica count now %s", tracked.key, tracked.declared)

    def _check_one(self, tracked: Tracked, now: float) -> Decision | None:
        self._follow_catalog(tracked)
        self._persist(tracked, now)
        if self.intent.holding(tracked, now):
            return None
        if self._engines_away(tracked):
            tracked.off_since = None
            return None
        desired = tracked.desired()
        running = self.count(tracked)
        key = tracked.key
        busy = key in self.in_flight or self.healing_under_way(key) or self.store.has_leftovers(key)
        is_paused = self.catalog.paused(key)
        if desired is None or running == desired or is_paused:
            tracked.off_since, tracked.tries, tracked.reported = None, 0, None
            if running == desired and not busy and not is_paused:
                return self._roll(tracked, running, now)
            return None
        if busy or tracked.off_since is None:
            tracked.off_since = now  # wait for whatever acts on it, then the grace period
            return None
        if tracked.reported not in (None, (running, desired)):
            tracked.tries = 0  # a new mismatch: its own grace period
        if now - tracked.off_since < self._delay(tracked):
            return None
        if self.dry_run and tracked.reported == (running, desired):
            return None  # reported once; a dry run changes nothing to look at again
        return self._decide(tracked, running, desired, now)

    def _persist(self, tracked: Tracked, now: float) -> None:
        """The desired count in the state file, for a restart that finds every replica
        exited; written when it changes."""
        desired = tracked.desired()
        if desired != tracked.persisted:
            self.store.record_desired(tracked.key, desired, now)
            tracked.persisted = desired

    def _delay(self, tracked: Tracked) -> float:
        """The grace period; doubled for each try the count did not follow."""
        if tracked.tries == 0:
            return self.config.grace
        return min(self.config.grace * 2.0**tracked.tries, MAX_RETRY_DELAY)

    def _decide(self, tracked: Tracked, running: int, desired: int, now: float) -> Decision:
        fixed = tracked.policy is not None and not tracked.policy.rules
        source = "declared" if fixed or tracked.decided is None else "ebbflow's last decision"
        if tracked.tries:
            log.warning(
                "service %s: still %d running of %d desired after %d tries",
                tracked.key,
                running,
                desired,
                tracked.tries,
            )
        tracked.tries += 1
        tracked.reported = (running, desired)
        tracked.off_since = now
        return self._publish(
            tracked,
            running,
            desired,
            f"{running} running, desired {desired} ({source})",
            {"replicas": running, "desired": desired},
            "reconcile",
            now,
        )

    def _roll(self, tracked: Tracked, running: int, now: float) -> Decision | None:
        service = self.catalog.get(tracked.key)
        replicas = list(service.replicas.values()) if service is not None else []
        old_copies = outdated(replicas, tracked.configuration)
        if (
            not old_copies
            or defined_by_copies(replicas)
            or tracked.roll_blocked == tracked.configuration
        ):
            return None
        if self.dry_run and tracked.roll_reported == len(old_copies):
            return None  # reported once
        tracked.roll_reported = len(old_copies)
        old = min(old_copies, key=lambda info: info.created)
        return self._publish(
            tracked,
            running,
            running,
            f"replace {old.name} (configuration {old.configuration}) with a copy of the new "
            f"configuration {tracked.configuration}; {len(old_copies)} left to roll",
            {"replicas": running, "outdated": len(old_copies)},
            "rollover",
            now,
        )

    def _publish(
        self,
        tracked: Tracked,
        running: int,
        desired: int,
        why: str,
        inputs: dict[str, float],
        origin: DecisionOrigin,
        now: float,
    ) -> Decision:
        reason = f"{tracked.key.name}: {running}→{desired}, {why}"
        if origin == "rollover":
            reason = f"{tracked.key.name}: {why}"
        decision = Decision(
            service=tracked.key,
            from_replicas=running,
            to_replicas=desired,
            reason=reason,
            timestamp=now,
            inputs=MappingProxyType(inputs),
            dry_run=self.dry_run,
            origin=origin,
            owner=self.catalog.owner(tracked.key),
            epoch=self.catalog.epoch(),
        )
        self.store.record(decision)
        self.in_flight.add(tracked.key)
        direction = "rollover" if origin == "rollover" else decision.direction
        self.decisions[(str(tracked.key), direction)] += 1
        log.info("%s%s: %s", origin, " (dry run)" if self.dry_run else "", decision.reason)
        self.bus.publish(decision)
        return decision

    # -- telemetry -------------------------------------------------------------------------
    def telemetry(self, now: float) -> Iterable[Sample]:
        for key, tracked in sorted(self.services.items(), key=lambda kv: str(kv[0])):
            desired = tracked.desired()
            if desired is not None:
                yield DESIRED.sample(desired, now, str(key))
        for key in sorted(self.retired, key=str):
            yield RETIRED.sample(1.0, now, str(key))
        for (service, direction), count in sorted(self.decisions.items()):
            yield RECONCILIATIONS.sample(count, now, direction, service)
