"""What the rule engine keeps per service between evaluations: each replica's readiness
and latest values, and the windows a policy's strategies read.

Which replicas a service has, its policy and its scope are the catalog's
(ebbflow/catalog.py); this is only what deciding needs on top.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ebbflow.model import ContainerInfo, ServiceKey
from ebbflow.names import PROBE_INITIAL_DELAY_LABELS, PROBE_LABELS
from ebbflow.policy import CPU_METRIC, MetricRule, Policy, PolicyResult
from ebbflow.state import LearnedStartup

from .rhythm import Rhythm
from .strategies.base import MAX_IMPLIED, replica_count
from .window import RingWindow

SATURATED = 95.0  # a percent metric this high may be hiding demand: it cannot go past 100
SATURATION_WINDOW = 3.0  # seconds: long enough that one noisy point is not saturation
STALE_AFTER = 10.0  # seconds a replica's value stays fresh, at least (or the window)
STARTUP_SMOOTHING = 0.5
# A window is full when it holds data over all of its span but the last few seconds: a
# collection interval or two may pass before the first sample arrives.
# Seconds replicas lost with their node count as unseen while it stays down: long enough
# for Swarm to move them (13 s measured on the lab) or the migrator to replace them.
LOSS_HELD = 120.0
# Seconds after a replica's death within which its engine's link may still break (the
# lab: the stream ended within a second of the last death an engine's stop caused).
ENGINE_GONE_WITHIN = 10.0
FRESH_SLACK = 5.0
RHYTHM_SLACK = 1  # replicas over a rhythm's need a scale-in leaves be (rhythm_keep)
# A recurring peak is served at 1 / 0.9 of the target (78 % at a 70 % target): the target's
# headroom is there for rises nobody knows of yet; a peak that keeps coming back is known,
# its height measured. Measured on benchmarks/replay's recurring traces: 0.9 cut 2-10 % of
# the replica seconds of 1.0 for the same violation seconds; at 0.84, reversals rose.
PEAK_AT_TARGET = 0.9


def bounded(value: float) -> float:
    """A window point kept finite and within what any replica count can mean."""
    return 0.0 if math.isnan(value) else min(max(value, -MAX_IMPLIED), MAX_IMPLIED)


@dataclass
class Replica:
    info: ContainerInfo
    ready_after: float  # start + warm-up (or the probe's initial delay)
    needs_probe: bool
    probe_ok: bool = False
    sampled: bool = False  # any sample about this container has arrived
    last_seen: float = -math.inf  # the newest sample's time, of any series
    ready_since: float | None = None
    latest: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric → (t, v)

    @classmethod
    def of(cls, info: ContainerInfo, policy: Policy | None, seen: float) -> Replica:
        started = info.started_at or seen
        delay = policy.warmup if policy else 0.0
        for label in PROBE_INITIAL_DELAY_LABELS:
            with contextlib.suppress(ValueError):  # a bad probe label is the probe's to report
                delay = max(delay, float(info.labels.get(label, 0)))
        needs_probe = any(label in info.labels for label in PROBE_LABELS)
        return cls(info, started + delay, needs_probe)

    def ready(self, now: float) -> bool:
        if (
            self.ready_since is None
            and now >= self.ready_after
            and (self.probe_ok or not self.needs_probe)
            and self.sampled
        ):
            self.ready_since = now
        return self.ready_since is not None

    def silent(self, now: float) -> bool:
        """Would be ready, but not one sample about it has arrived."""
        return (
            not self.sampled and now >= self.ready_after and (self.probe_ok or not self.needs_probe)
        )


@dataclass
class ServiceState:
    key: ServiceKey
    replicas: dict[str, Replica] = field(default_factory=dict)  # by container name
    policy: PolicyResult | None = None  # the policy the windows below were built for
    service_values: dict[str, tuple[float, float]] = field(default_factory=dict)
    values: dict[str, RingWindow] = field(default_factory=dict)  # rule id → value per tick
    implied: dict[str, RingWindow] = field(default_factory=dict)  # rule id → replicas per tick
    recommended: RingWindow = field(default_factory=RingWindow)  # for scale-in stabilisation
    rhythms: dict[str, Rhythm] = field(default_factory=dict)  # rule id → its load's peaks
    averages: dict[str, float] = field(default_factory=dict)
    saturated_at: dict[str, float] = field(default_factory=dict)  # rule id → last such point
    startup: LearnedStartup | None = None  # decision → first sample of a new replica
    last_scale_out: float | None = None
    # direction → when a standby saw the replica count move that way (the leader's
    # actions), so a takeover keeps the leader's cooldowns without sharing its state
    observed: dict[str, float] = field(default_factory=dict)
    # (replicas, until): an action succeeded and the containers are still catching up
    # (Swarm starts and stops tasks after the update returns); no decision until they do.
    converging: tuple[int, float] | None = None
    # Since when its data is fresh: this instance's first sight of it, its policy's last
    # change, the last reconnect to an engine. No decision rests on less than a window.
    fresh_since: float = 0.0
    first_point: dict[str, float] = field(default_factory=dict)  # rule id → since fresh
    lacking: dict[str, int] = field(default_factory=dict)  # rule id → ready, with no value
    # Replicas gone with their engine (it stopped them, or its link broke): name → (node,
    # when, the replica count before). Their load is unknown until they are replaced.
    lost: dict[str, tuple[str, float, int]] = field(default_factory=dict)

    def follow(self, policy: PolicyResult, now: float) -> None:
        """The service's policy changed: windows of the old one mean nothing for it."""
        if policy is not self.policy:
            self.policy = policy
            self.values.clear()
            self.implied.clear()
            self.rhythms.clear()
            self.refresh(now)

    def refresh(self, now: float) -> None:
        """Data from before now no longer counts toward a full window."""
        self.fresh_since = now
        self.first_point.clear()

    def window_gap(self, rule: MetricRule, policy: Policy, now: float) -> float:
        """Seconds of the rule's window not yet covered by fresh data (0: full)."""
        first = self.first_point.get(rule.id, now)
        since_fresh = now - self.fresh_since
        covered = min(since_fresh, now - first + min(policy.window, FRESH_SLACK))
        return max(0.0, policy.window - covered)

    def ready(self, now: float) -> tuple[list[Replica], list[Replica]]:
        """(ready replicas, those that became ready just now)."""
        ready, new = [], []
        for replica in self.replicas.values():
            was_ready = replica.ready_since is not None
            if replica.ready(now):
                ready.append(replica)
                if not was_ready:
                    new.append(replica)
        return ready, new

    def unseen(self, policy: Policy, now: float) -> int:
        """Replicas past their warm-up that send no fresh samples of any kind: never
        sampled (no agent on their node), or silent for longer than a value stays fresh
        (their agent or its link is gone). Their load is unknown, never zero."""
        stale_before = now - max(STALE_AFTER, policy.window)
        return sum(
            1
            for replica in self.replicas.values()
            if now >= replica.ready_after and replica.last_seen < stale_before
        )

    def partly_seen(self, policy: Policy, now: float, down: Callable[[str], bool]) -> int:
        """Replicas whose load a scale-in would not know: unseen; ready but without a
        fresh value of a metric a rule reads; or gone less than LOSS_HELD ago, not yet
        replaced (Swarm moves them, the migrator replaces them), with a node that is
        `down` or may yet turn out so: an engine's shutdown stops its containers first,
        and its link breaks only after their deaths are seen."""
        lacking = max((self.lacking.get(rule.id, 0) for rule in policy.rules), default=0)
        for name, (node, when, before) in list(self.lost.items()):
            known_up = not down(node) and now - when > ENGINE_GONE_WITHIN
            replaced = len(self.replicas) >= before
            if known_up or now - when > LOSS_HELD or replaced:
                del self.lost[name]
                if replaced:  # what the windows hold was measured on part of the service
                    self.refresh(now)
        return max(self.unseen(policy, now), lacking) + len(self.lost)

    def observe(self, rule: MetricRule, policy: Policy, ready: list[Replica], now: float) -> bool:
        """Add this instant's value and implied replicas to a rule's windows; False when
        its data is missing or stale."""
        stale_before = now - max(STALE_AFTER, policy.window)
        values = [
            r.latest[rule.metric][1]
            for r in ready
            if rule.metric in r.latest and r.latest[rule.metric][0] >= stale_before
        ]
        # Ready replicas without a fresh value of this metric (a first collection cycle
        # has no CPU rate yet; a replica whose app does not export it): the value covers
        # part of the service only. As Kubernetes' HPA does, they count as idle toward a
        # scale-out (an average over all ready replicas: never more than is known), and
        # they hold any scale-in (partly_seen), so neither direction rests on a guess.
        self.lacking[rule.id] = len(ready) - len(values) if values else 0
        # So do replicas past their warm-up that sent nothing yet (their agent's first push
        # is still on its way, or they have no agent): running, not ready only for want of
        # a sample, so `ready` leaves them out; `unseen` holds a scale-in for them. Not
        # those our last scale-out made: they are capacity on its way (learn_startup's
        # rule), and counting them idle would pay a start-up twice.
        silent = sum(1 for r in self.replicas.values() if r.silent(now) and not self.ours(r))
        if values:
            known = len(ready) + silent
            value = max(values) if rule.aggregation != "avg" else sum(values) / known
            implied = sum(values) / rule.target if rule.target else float(len(values))
            if rule.aggregation != "avg" and rule.target:
                implied = len(values) * value / rule.target
        elif (
            rule.metric in self.service_values
            and self.service_values[rule.metric][0] >= stale_before
            and ready
        ):
            total = self.service_values[rule.metric][1]  # a service-wide number, e.g. a queue
            value = total / len(ready) if rule.target else total
            implied = total / rule.target if rule.target else float(len(ready))
        else:
            return False
        self.first_point.setdefault(rule.id, now)
        self.values.setdefault(rule.id, RingWindow()).add(now, bounded(value))
        self.implied.setdefault(rule.id, RingWindow()).add(now, bounded(implied))
        recent = self.values[rule.id].aggregate(now - SATURATION_WINDOW, "avg")
        if rule.metric == CPU_METRIC and recent is not None and recent >= SATURATED:
            self.saturated_at[rule.id] = now  # for a while, not one noisy point
        if rule.target:
            rhythm = self.rhythms.setdefault(rule.id, Rhythm())
            saturated = self.saturated_at.get(rule.id) == now
            rhythm.observe(self.implied[rule.id], now, self.horizon(policy), saturated)
        return True

    def rhythm_need(self, now: float) -> int:
        """Replicas the highest of the load's recurring peaks needs at the target, over
        the span of their rhythm (rhythm.py); 0 without one, or while a window is
        saturated at this point (the load may be past any peak seen)."""
        if any(at == now for at in self.saturated_at.values()):
            return 0
        need = 0
        for rule_id, rhythm in self.rhythms.items():
            span = rhythm.hold(now)
            peak = self.implied[rule_id].aggregate(now - span, "max") if span else None
            if peak is None:
                continue
            need = max(need, replica_count(peak * PEAK_AT_TARGET, 0))
            if self.saturated_at.get(rule_id, -math.inf) >= now - span:
                # a saturated peak showed less than its height: what was recommended for
                # it (grown while saturated) is the better measure
                ordered = self.recommended.aggregate(now - span, "max")
                need = max(need, int(ordered or 0))
        return need

    @staticmethod
    def rhythm_keep(need: int, current: int) -> int:
        """What a scale-in keeps for a rhythm's `need`: all of `current` while it is at
        most one replica over the need (noise in the peaks' height moves the need by one
        either way: following it would be a reversal each time), else the need."""
        if need and current <= need + RHYTHM_SLACK:
            return current
        return min(need, current)

    def ours(self, replica: Replica) -> bool:
        """Made by our last scale-out (started after it)."""
        decided = self.last_scale_out
        started = replica.info.started_at
        return decided is not None and not (started and started < decided)

    def learn_startup(self, replica: Replica, now: float) -> bool:
        """A replica made by our last scale-out just became ready: how long that took.
        True when a start-up was learned."""
        if not self.ours(replica):
            return False
        decided = self.last_scale_out
        assert decided is not None
        took = now - decided
        before = self.startup
        smoothed = (
            took
            if before is None
            else STARTUP_SMOOTHING * took + (1 - STARTUP_SMOOTHING) * before.seconds
        )
        seen = before.seen + 1 if before else 1
        self.startup = LearnedStartup(smoothed, took, seen, now)
        return True

    def horizon(self, policy: Policy) -> float:
        """How far ahead capacity ordered now arrives: the learned start-up time, or the
        policy's first guess until one was seen."""
        return self.startup.seconds if self.startup is not None else policy.startup
