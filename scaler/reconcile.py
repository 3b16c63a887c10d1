"""Desired replica counts on plain engines, kept the way Swarm mode keeps a service's tasks.

A service's desired count is ebbflow's last decision for it that was carried out, else the
count its labels declare (`aliyun.scale`, `ebbflow.scale.initial_replicas`); a declared
count that changes while ebbflow watches wins over older decisions. When the replicas
running on healthy nodes stay off that count for a grace period while nothing else acts
on the service (no decision under way, no healing step pending, no leftover of a
migration to remove), the reconciler decides the difference back: a replica that died
and that neither Docker nor healing brings back is replaced, a service started short is
brought up, a surplus is removed (unhealthy replicas first, then the newest).

What someone else does is intent, not failure. A replica stopped or removed by hand (not
by ebbflow) is held for a redeploy window first: when within it a replica not made by
ebbflow starts, or the service's defining configuration changes, it was a redeploy
(compose removes what its file does not count and recreates the rest) and the desired
count stays; else, while others run, it is a manual scale-in that the desired count
follows (unless it goes below the policy's min, which is said once and restored), and
with every replica gone the service is retired: left alone, with one log line and a
`ServiceRetired` event, until a replica of it starts again. A replica ebbflow made that
someone else removes right after its creation, twice, is a fight: ebbflow pauses the
service (one warning, a `ServiceFight` event) rather than re-add it forever.

After a redeploy, ebbflow's own copies of the old configuration are rolled onto the new
one, one at a time (a `rollover` decision: the actuator starts the new copy before it
removes the old), so the service never runs two versions for longer than one replacement.

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
from dataclasses import dataclass, field
from types import MappingProxyType

from ebbflow.bus import Bus
from ebbflow.config import ReconcileConfig, RulesConfig, ScopeConfig
from ebbflow.controls import paused
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    OperatorControls,
    Sample,
    ServiceFight,
    ServiceKey,
    ServiceRetired,
    labels_of,
)
from ebbflow.nodes import Nodes
from ebbflow.plugins import Actuator
from ebbflow.policy import Policy, effective_labels, parse_policy
from ebbflow.services import (
    CREATED_BY_LABEL,
    defining,
    format_service_key,
    guests,
    service_key,
)
from ebbflow.state import DecisionStore

log = logging.getLogger("ebbflow.scaler.reconcile")

MAX_RETRY_DELAY = 300.0


@dataclass
class Tracked:
    """One service as the reconciler sees it."""

    key: ServiceKey
    running: dict[str, ContainerInfo] = field(default_factory=dict)  # by container id
    policy: Policy | None = None  # from its newest replica's labels; None: none or invalid
    declared: int | None = None
    decided: int | None = None  # the target of its last decision carried out
    operator: int | None = None  # the count someone else left it at by hand, if later
    below_min_said: bool = False
    off_since: float | None = None  # off its count, with nothing else acting, since then
    tries: int = 0  # reconcile decisions for the current mismatch
    reported: tuple[int, int] | None = None  # (running, desired) last decided on
    configuration: str = ""  # the defining replica's (services.configuration)
    # Replicas stopped or removed by someone else, not read yet: (name, how, when).
    # By container id: a stop and the removal after it are one (compose renames between).
    held: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)  # held ids already read: their rm is no news
    held_configuration: str = ""
    restarted_while_held: bool = False  # a replica not made by ebbflow started meanwhile
    roll_blocked: str = ""  # a configuration whose copies exited at once: not rolled onto
    roll_reported: int | None = None  # outdated copies last rolled (or reported, dry run)
    made: dict[str, float] = field(default_factory=dict)  # ebbflow's replicas: when created
    quick_removals: collections.Counter[str] = field(default_factory=collections.Counter)

    def desired(self) -> int | None:
        if self.policy is None:
            return None
        if self.operator is not None:  # a manual scale-in, within the policy's bounds
            return max(self.policy.min_replicas, min(self.policy.max_replicas, self.operator))
        if not self.policy.rules:
            return self.declared  # a fixed count: nothing else decides it
        target = self.decided if self.decided is not None else self.declared
        if target is None:
            return None
        return max(self.policy.min_replicas, min(self.policy.max_replicas, target))


class Reconciler:
    name = "reconciler"

    def __init__(
        self,
        bus: Bus,
        nodes: Nodes,
        store: DecisionStore,
        actuators: Sequence[Actuator],
        clock: Callable[[], float],
        config: ReconcileConfig,
        rules: RulesConfig,
        dry_run: bool = False,
        healing_under_way: Callable[[ServiceKey], bool] = lambda _: False,
        scope: ScopeConfig | None = None,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.bus = bus
        self.scope = scope or ScopeConfig()
        self.may_act = may_act
        self.nodes = nodes
        self.store = store
        self.actuators = list(actuators)
        self.clock = clock
        self.config = config
        self.rules = rules
        self.dry_run = dry_run
        self.healing_under_way = healing_under_way
        self.subscription = bus.subscribe(
            "reconciler", ContainerEvent, Decision, ActionResult, OperatorControls, capacity=4096
        )
        self.paused: frozenset[str] = frozenset()
        # services paused for a fight → whether the operator's controls showed the pause yet
        self.fights: dict[ServiceKey, bool] = {}
        self.services: dict[ServiceKey, Tracked] = {}
        self.owner: dict[str, ServiceKey] = {}  # container id → its service
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
            self.paused = event.paused
            for tracked in self.services.values():
                if paused(event.forgotten, tracked.key):
                    tracked.decided = tracked.operator = None
            self._end_fights(event)

    def _end_fights(self, controls: OperatorControls) -> None:
        """A service paused for a fight and then resumed: the fight is over. Only once the
        operator's controls showed the pause, so an announcement from before it ends
        nothing."""
        for key, seen_paused in list(self.fights.items()):
            if paused(controls.paused, key):
                self.fights[key] = True
            elif seen_paused:
                del self.fights[key]
                log.info("service %s: resumed by the operator; the fight is over", key)
                self.bus.publish(
                    ServiceFight(key, "resumed by the operator", self.clock(), fighting=False)
                )

    def on_container(self, event: ContainerEvent) -> None:
        info = event.container
        if event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            key = service_key(info.labels, info.name)
            if key.kind == "swarm" or not any(a.supports(key) for a in self.actuators):
                return  # Swarm keeps its own count; a lone container has none
            if not self.scope.covers(info.labels):
                return  # outside the scope: monitored, never acted on
            tracked = self.services.get(key)
            if tracked is None:
                tracked = self.services[key] = self._track(key)
            tracked.running[info.id] = info
            if CREATED_BY_LABEL in info.labels and (
                info.id not in self.owner or info.name not in tracked.made
            ):  # created (again, under a name compose reuses), not restarted
                tracked.made[info.name] = event.timestamp
            elif tracked.held and info.id not in self.owner:  # a new one, not a restart
                tracked.restarted_while_held = True
            self._redefine(tracked)
            self.owner[info.id] = key
            self._follow_the_leader(tracked)
            self._settle(key)
            return
        owner = self.owner.get(info.id)
        if owner is None or owner not in self.services:
            return
        if event.kind is ContainerEventKind.DIE:
            self.services[owner].running.pop(info.id, None)
            self._settle(owner)
        elif event.kind in (ContainerEventKind.STOP, ContainerEventKind.DESTROY):
            if event.kind is ContainerEventKind.DESTROY:
                del self.owner[info.id]
            tracked = self.services[owner]
            tracked.running.pop(info.id, None)
            if not self.may_act():
                self._follow_the_leader(tracked)
            elif not any(a.acted_on(info.id) for a in self.actuators):
                how = "removed" if event.kind is ContainerEventKind.DESTROY else "stopped"
                if info.id in tracked.read:
                    if event.kind is ContainerEventKind.DESTROY:
                        tracked.read.discard(info.id)
                    self._settle(owner)
                    return
                if not tracked.held:
                    tracked.held_configuration = tracked.configuration
                    tracked.restarted_while_held = False
                earlier = tracked.held.pop(info.id, None)
                name = earlier[0] if earlier else info.name
                when = earlier[2] if earlier else event.timestamp
                tracked.held[info.id] = (name, how, when)
                self._redefine(tracked)
            self._settle(owner)

    def _redefine(self, tracked: Tracked) -> None:
        """The replica that defines the service may have changed: its policy, its
        configuration (a redeploy ends a hold at once), its declared count."""
        replicas = list(tracked.running.values())
        if not replicas:
            return
        source = defining(replicas, lambda i: i.labels, lambda i: i.created)
        self._read_policy(tracked, source)
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
        if tracked.held and (
            tracked.restarted_while_held or tracked.configuration != tracked.held_configuration
        ):
            self._read_held(tracked, redeployed=True)

    def _read_held(self, tracked: Tracked, redeployed: bool) -> None:
        """What the replicas someone else stopped or removed meant."""
        tracked.read |= set(tracked.held)
        held, tracked.held = list(tracked.held.values()), {}
        tracked.tries, tracked.reported = 0, None  # someone else acted: a new mismatch
        names = ", ".join(name for name, _, _ in held)
        if redeployed:
            log.info(
                "service %s: redeployed (configuration %s): %s %s by it; the desired count "
                "stays %s",
                tracked.key,
                tracked.configuration or "unchanged",
                names,
                "were" if len(held) > 1 else "was",
                tracked.desired(),
            )
            return
        for name, _, when in held:
            made = tracked.made.get(name)
            if made is not None and when - made < self.config.fight_window:
                tracked.quick_removals[name] += 1
                if tracked.quick_removals[name] >= 2:
                    self._fight(tracked, name)
                    return
        name, how, _ = held[-1]
        self._by_the_operator(tracked, name, how)

    def _fight(self, tracked: Tracked, name: str) -> None:
        key = format_service_key(tracked.key)
        why = (
            f"{name} was removed by someone other than ebbflow right after ebbflow created "
            "it, twice: ebbflow stops re-adding replicas and pauses the service (`ebbflow "
            f"resume {key}` manages it again; see 'With docker compose' in the README)"
        )
        log.warning("service %s: %s", tracked.key, why)
        self.store.set_paused(key, True, self.clock())
        self.paused |= {key}
        self.fights[tracked.key] = False
        tracked.quick_removals.clear()
        self.bus.publish(ServiceFight(tracked.key, why, self.clock()))

    def _follow_the_leader(self, tracked: Tracked) -> None:
        """A standby takes the count the leader keeps as its own, so a takeover keeps it
        (the engine is the source of truth; the leader's state file may be elsewhere)."""
        if not self.may_act() and tracked.running:
            tracked.decided, tracked.operator = len(tracked.running), None

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

    def _by_the_operator(self, tracked: Tracked, name: str, how: str) -> None:
        """Someone else stopped or removed a replica, and it was no redeploy: what they
        meant, not a failure."""
        left = len(tracked.running)
        desired = tracked.desired()
        if left == 0:
            self._retire(tracked, f"every replica was {how} by someone other than ebbflow")
            return
        if tracked.policy is None or desired is None or left >= desired:
            return
        if left < tracked.policy.min_replicas:
            if not tracked.below_min_said:
                tracked.below_min_said = True
                log.warning(
                    "service %s: %s was %s by hand, leaving %d replicas, below its "
                    "min_replicas %d: ebbflow brings it back to %d",
                    tracked.key,
                    name,
                    how,
                    left,
                    tracked.policy.min_replicas,
                    tracked.policy.min_replicas,
                )
            return
        log.info(
            "service %s: %s was %s by hand: a manual scale-in, desired count now %d",
            tracked.key,
            name,
            how,
            left,
        )
        tracked.operator = left
        self._record_operator(tracked, desired, left, f"{name} {how} by hand")

    def _retire(self, tracked: Tracked, why: str) -> None:
        key = tracked.key
        log.info("service %s retired: %s; left alone until a replica starts again", key, why)
        self._record_operator(tracked, tracked.desired() or 0, 0, f"retired: {why}")
        del self.services[key]
        self.owner = {cid: k for cid, k in self.owner.items() if k != key}
        self.retired.add(key)
        self.bus.publish(ServiceRetired(key, True, why, self.clock()))

    def _record_operator(self, tracked: Tracked, was: int, to: int, what: str) -> None:
        """What someone else did, in the audit log: ebbflow follows it, and a restart too."""
        decision = Decision(
            service=tracked.key,
            from_replicas=was,
            to_replicas=to,
            reason=f"{tracked.key.name}: {was}→{to}, {what}",
            timestamp=self.clock(),
            inputs=MappingProxyType({"replicas": to}),
            dry_run=self.dry_run,
            origin="operator",
        )
        self.store.record(decision)
        self.store.record_outcome(decision, True, "done by the operator; ebbflow follows")

    def _read_policy(self, tracked: Tracked, source: ContainerInfo) -> None:
        key = tracked.key
        labels = effective_labels(source.labels, str(key), key.name, self.rules.policies)
        result = parse_policy(labels, self.rules)
        tracked.policy = result.policy if result.ok else None
        declared = tracked.policy.initial_replicas if tracked.policy else None
        if declared != tracked.declared and tracked.declared is not None:
            log.info("service %s: declared replica count now %s", key, declared)
            tracked.decided = tracked.operator = None  # a new declaration overrides both
        tracked.declared = declared

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
        replicas = list(tracked.running.values())
        ignored = {info.id for info in guests(replicas, lambda i: i.labels)}
        return sum(1 for i in replicas if self.nodes.healthy(i.node) and i.id not in ignored)

    def check(self) -> list[Decision]:
        now = self.clock()
        decided: list[Decision] = []
        if not self.may_act():
            for tracked in self.services.values():
                tracked.off_since = None  # a grace period starts when this one may act
            return decided
        for tracked in list(self.services.values()):
            decision = self._check_one(tracked, now)
            if decision is not None:
                decided.append(decision)
        return decided

    def _check_one(self, tracked: Tracked, now: float) -> Decision | None:
        if tracked.held:
            if now - min(w for _, _, w in tracked.held.values()) < self.config.redeploy_window:
                tracked.off_since = now  # nothing is re-added while it may be a redeploy
                return None
            self._read_held(tracked, redeployed=False)
            if tracked.key not in self.services:
                return None  # retired
        desired = tracked.desired()
        running = self.count(tracked)
        key = tracked.key
        busy = key in self.in_flight or self.healing_under_way(key) or self.store.has_leftovers(key)
        if desired is None or running == desired or paused(self.paused, tracked.key):
            tracked.off_since, tracked.tries, tracked.reported = None, 0, None
            if running == desired and not busy and not paused(self.paused, key):
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
        decision = Decision(
            service=tracked.key,
            from_replicas=running,
            to_replicas=desired,
            reason=f"{tracked.key.name}: {running}→{desired}, {running} running, "
            f"desired {desired} ({source})",
            timestamp=now,
            inputs=MappingProxyType({"replicas": running, "desired": desired}),
            dry_run=self.dry_run,
            origin="reconcile",
        )
        tracked.tries += 1
        tracked.reported = (running, desired)
        tracked.off_since = now
        self.store.record(decision)
        self.in_flight.add(tracked.key)
        self.decisions[(str(tracked.key), decision.direction)] += 1
        log.info("reconcile%s: %s", " (dry run)" if self.dry_run else "", decision.reason)
        self.bus.publish(decision)
        return decision

    def outdated(self, tracked: Tracked) -> list[ContainerInfo]:
        """ebbflow's own copies of a configuration the service no longer has."""
        return [
            info
            for info in tracked.running.values()
            if CREATED_BY_LABEL in info.labels
            and info.configuration
            and info.configuration != tracked.configuration
        ]

    def _roll(self, tracked: Tracked, running: int, now: float) -> Decision | None:
        outdated = self.outdated(tracked)
        defined_by_copy = all(CREATED_BY_LABEL in i.labels for i in tracked.running.values())
        if not outdated or defined_by_copy or tracked.roll_blocked == tracked.configuration:
            return None
        old = min(outdated, key=lambda info: info.created)
        decision = Decision(
            service=tracked.key,
            from_replicas=running,
            to_replicas=running,
            reason=f"{tracked.key.name}: replace {old.name} (configuration "
            f"{old.configuration}) with a copy of the new configuration "
            f"{tracked.configuration}; {len(outdated)} left to roll",
            timestamp=now,
            inputs=MappingProxyType({"replicas": running, "outdated": len(outdated)}),
            dry_run=self.dry_run,
            origin="rollover",
        )
        if self.dry_run and tracked.roll_reported == len(outdated):
            return None  # reported once
        tracked.roll_reported = len(outdated)
        self.store.record(decision)
        self.in_flight.add(tracked.key)
        self.decisions[(str(tracked.key), "rollover")] += 1
        log.info("rollover%s: %s", " (dry run)" if self.dry_run else "", decision.reason)
        self.bus.publish(decision)
        return decision

    # -- telemetry -------------------------------------------------------------------------
    def telemetry(self, now: float) -> Iterable[Sample]:
        for key, tracked in sorted(self.services.items(), key=lambda kv: str(kv[0])):
            desired = tracked.desired()
            if desired is not None:
                yield Sample(
                    "ebbflow_service_replicas_desired",
                    desired,
                    labels_of({"service": str(key)}),
                    now,
                    "gauge",
                    "The replica count ebbflow keeps a plain-engine service at.",
                )
        for key in sorted(self.retired, key=str):
            yield Sample(
                "ebbflow_service_retired",
                1.0,
                labels_of({"service": str(key)}),
                now,
                "gauge",
                "1 while a service is retired: its operator removed every replica.",
            )
        for (service, direction), count in sorted(self.decisions.items()):
            yield Sample(
                "ebbflow_reconciliations_total",
                count,
                labels_of({"service": service, "direction": direction}),
                now,
                "counter",
                "Decisions that brought a service back to its desired replica count.",
            )
