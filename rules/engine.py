"""The rule engine: each arriving sample re-evaluates only the services whose policy reads it.

Per service and metric, every evaluation appends one point (the value across ready
replicas, and the replica count it implies) to numpy ring windows. Each metric recommends
a replica count (step, proportional or predictive); the largest wins; scale-in is
stabilised, never done on missing or stale data, and rate-limited; min/max always hold;
cooldowns per direction are read from the store, so a restart does not shorten them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ebbflow.bus import Bus
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.controls import paused
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    DecisionOrigin,
    OperatorControls,
    PolicyProblem,
    Sample,
    SampleBatch,
    ServiceKey,
    labels_of,
)
from ebbflow.services import defining, service_key
from ebbflow.state import DecisionStore, LearnedStartup

from .policy import (
    CPU_METRIC,
    PERCENT_METRICS,
    MetricRule,
    Policy,
    PolicyResult,
    effective_labels,
    parse_policy,
)
from .window import Line, RingWindow

log = logging.getLogger("ebbflow.rules")

PROBE_INITIAL_DELAY = ("aliyun.probe.initial_delay_seconds", "ebbflow.health.initial_delay")
PROBE_LABELS = ("aliyun.probe.url", "aliyun.probe.cmd", "ebbflow.health.url", "ebbflow.health.cmd")
SATURATED = 95.0  # a percent metric this high may be hiding demand: it cannot go past 100
SATURATION_GROWTH = 1.5  # per round while saturated, at short start-ups
MAX_SATURATION_GROWTH = 3.0  # per round while saturated, at start-ups of 45 s and more
# A rise is a trend when its slope is this many standard errors above 0: 3, not 2, since
# the test is repeated on every evaluation and noise must almost never pass it.
TREND_Z = 3.0
TREND_STARTUPS = 2.0  # the trend's line runs through this many start-ups of points
MIN_TREND_SPAN = 60.0  # ... and at least this many seconds of them
PEAK_MEMORY = 180.0  # seconds of load peaks a scale-in keeps capacity for
PEAK_MEMORY_STARTUPS = 3.0  # ... or this many start-ups, when that is longer
SATURATION_WINDOW = 3.0  # seconds: long enough that one noisy point is not saturation
STARTUP_SMOOTHING = 0.5
CONVERGE_DEADLINE = 60.0  # seconds the containers get to match an action's replica count
STUCK_AFTER = 30.0  # seconds with events waiting and none handled: not evaluating
MAX_IMPLIED = 1e9  # replicas a window point may imply: far past any max_replicas, still exact


def replica_count(value: float, otherwise: int) -> int:
    """⌈value⌉ as a replica count, whatever the arithmetic before it gave: NaN means no
    opinion (`otherwise`), +inf and huge values the largest count, negatives 0."""
    if math.isnan(value):
        return otherwise
    return math.ceil(min(max(value, 0.0), MAX_IMPLIED) - 1e-9)


def saturation_growth(startup: float) -> float:
    """The factor to grow by while saturated: each round costs a start-up of unserved
    load, so the longer it is, the fewer rounds are worth their overshoot."""
    return min(MAX_SATURATION_GROWTH, SATURATION_GROWTH + startup / 30)


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
    ready_since: float | None = None
    latest: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric → (t, v)

    def ready(self, now: float) -> bool:
        if (
            self.ready_since is None
            and now >= self.ready_after
            and (self.probe_ok or not self.needs_probe)
            and self.sampled
        ):
            self.ready_since = now
        return self.ready_since is not None


@dataclass(frozen=True)
class Recommendation:
    rule: MetricRule
    replicas: int
    why: str
    value: float | None
    keep: int = 0  # replicas a scale-in must keep (the recent peak's)


@dataclass
class ServiceState:
    key: ServiceKey
    replicas: dict[str, Replica] = field(default_factory=dict)  # by container name
    result: PolicyResult = field(default_factory=lambda: PolicyResult(None))
    service_values: dict[str, tuple[float, float]] = field(default_factory=dict)
    values: dict[str, RingWindow] = field(default_factory=dict)  # rule id → value per tick
    implied: dict[str, RingWindow] = field(default_factory=dict)  # rule id → replicas per tick
    recommended: RingWindow = field(default_factory=RingWindow)  # for scale-in stabilisation
    averages: dict[str, float] = field(default_factory=dict)
    saturated_at: dict[str, float] = field(default_factory=dict)  # rule id → last such point
    startup: LearnedStartup | None = None  # decision → first sample of a new replica
    last_scale_out: float | None = None
    in_scope: bool = True  # the defining replica's labels lie in the instance's scope
    source: str = ""  # the replica whose labels define the policy (services.defining)
    # direction → when a standby saw the replica count move that way (the leader's
    # actions), so a takeover keeps the leader's cooldowns without sharing its state
    observed: dict[str, float] = field(default_factory=dict)
    # (replicas, until): an action succeeded and the containers are still catching up
    # (Swarm starts and stops tasks after the update returns); no decision until they do.
    converging: tuple[int, float] | None = None

    @property
    def count(self) -> int:
        return len(self.replicas)


def group_services(
    containers: Iterable[ContainerInfo],
    defaults: RulesConfig | None = None,
    scope: ScopeConfig | None = None,
) -> dict[ServiceKey, ServiceState]:
    """Services and their parsed policies, from running containers (also used by the CLI)."""
    defaults = defaults or RulesConfig()
    scope = scope or ScopeConfig()
    services: dict[ServiceKey, ServiceState] = {}
    for info in containers:
        key = service_key(info.labels, info.name)
        state = services.setdefault(key, ServiceState(key))
        state.replicas[info.name] = Replica(info, info.started_at, False)
    for key, state in services.items():
        source = defining(
            [r.info for r in state.replicas.values()], lambda i: i.labels, lambda i: i.created
        )
        state.source = source.name
        labels = effective_labels(source.labels, str(key), key.name, defaults.policies)
        state.result = parse_policy(labels, defaults)
        state.in_scope = scope.covers(source.labels)
    return services


def recommend_step(rule: MetricRule, value: float, current: int, step: int) -> tuple[int, str]:
    if rule.max is not None and value > rule.max:
        return (
            current + step,
            f"{rule.label} {rule.aggregation} {rule.show(value)} > max {rule.show(rule.max)}",
        )
    if rule.min is not None and value < rule.min:
        return (
            current - step,
            f"{rule.label} {rule.aggregation} {rule.show(value)} < min {rule.show(rule.min)}",
        )
    return current, f"{rule.label} {rule.aggregation} {rule.show(value)} within bounds"


def recommend_proportional(
    rule: MetricRule, value: float, implied: float, current: int, ready: int, tolerance: float
) -> tuple[int, str]:
    """HPA's rule: desired = ceil(replicas * value / target), unless within the tolerance.

    `implied` is that product averaged over the window (replicas * value / target at each
    point), so a window that spans a change of replica count still means what it says.
    """
    assert rule.target is not None
    ratio = value / rule.target
    side = ">" if ratio > 1 else "<"
    why = (
        f"{rule.label} {rule.aggregation} {rule.show(value)} {side} target {rule.show(rule.target)}"
    )
    if abs(ratio - 1) <= tolerance or ready == 0:
        return current, why.replace(f" {side} ", " ≈ ")
    return replica_count(implied, current), why


class RuleEngine:
    name = "rules"

    def __init__(
        self,
        bus: Bus,
        store: DecisionStore,
        clock: Callable[[], float],
        defaults: RulesConfig | None = None,
        dry_run: bool = False,
        action_deadline: float = 300.0,
        scope: ScopeConfig | None = None,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        self.bus = bus
        self.scope = scope or ScopeConfig()
        self.may_act = may_act  # the lease: a standby keeps its windows but decides nothing
        self.store = store
        self.clock = clock
        self.defaults = defaults or RulesConfig()
        self.dry_run = dry_run
        self.action_deadline = action_deadline
        self.subscription = bus.subscribe(
            "rules", ContainerEvent, SampleBatch, ActionResult, OperatorControls, capacity=4096
        )
        self.paused: frozenset[str] = frozenset()  # as the operator named them
        self.services: dict[ServiceKey, ServiceState] = {}
        self.member_of: dict[str, ServiceKey] = {}
        self.by_service_label: dict[str, ServiceKey] = {}  # "project/name" and "name"
        # service → when its decision was published; cleared by the action's result, and
        # expired after `action_deadline` so a lost result cannot freeze a service forever.
        self.in_flight: dict[ServiceKey, float] = {}
        self.decisions: collections.Counter[tuple[str, str]] = collections.Counter()
        self.non_finite = 0  # samples a policy reads whose value was NaN or ±inf
        self.evaluation_errors = 0
        self.event_errors = 0
        self.state_errors = 0  # reads and writes of learned start-ups the state file refused
        self.state_problem: str | None = None  # the last of them, until one succeeds
        self.last_handled = time.monotonic()  # of the last event handled

    # -- events --------------------------------------------------------------------------
    async def run(self) -> None:
        async for event in self.subscription:
            try:
                self.handle(event)
            except Exception:  # one event, never the engine: counted and logged
                self.event_errors += 1
                log.exception("rules: an event could not be handled: %.200r", event)
            self.last_handled = time.monotonic()

    def health_problem(self) -> str | None:
        """Not evaluating: events wait while none has been handled for a while; or the
        state file refuses what the engine keeps there."""
        if self.state_problem is not None:
            return self.state_problem
        waiting = self.subscription.stats().depth
        if waiting and time.monotonic() - self.last_handled > STUCK_AFTER:
            return f"not evaluating: {waiting} events wait, none handled for {STUCK_AFTER:g}s"
        return None

    def handle(self, event: object) -> list[Decision]:
        if isinstance(event, SampleBatch):
            return self.on_samples(event.samples)
        if isinstance(event, ContainerEvent):
            self.on_container(event)
        elif isinstance(event, OperatorControls):
            self.paused = event.paused
        elif isinstance(event, ActionResult):
            decision = event.decision
            if decision.origin in ("policy", "bounds"):
                self.in_flight.pop(decision.service, None)
            state = self.services.get(decision.service)
            if state is not None and event.ok and not decision.dry_run:
                state.converging = (decision.to_replicas, self.clock() + CONVERGE_DEADLINE)
        return []

    def on_container(self, event: ContainerEvent) -> None:
        info = event.container
        if event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            key = service_key(info.labels, info.name)
            if key not in self.services:
                self.services[key] = ServiceState(key, startup=self._stored_startup(key))
            state = self.services[key]
            if info.name not in state.replicas and state.replicas and not self.may_act():
                state.observed["out"] = event.timestamp
            others = [r.info for name, r in state.replicas.items() if name != info.name]
            source = defining([*others, info], lambda i: i.labels, lambda i: i.created)
            labels = effective_labels(source.labels, str(key), key.name, self.defaults.policies)
            self._set_policy(state, parse_policy(labels, self.defaults))
            state.in_scope = self.scope.covers(source.labels)
            state.replicas[info.name] = self._replica(info, state.result.policy, event.timestamp)
            self.member_of[info.name] = key
            self.by_service_label[str(key)] = self.by_service_label[key.name] = key
        elif event.kind in (ContainerEventKind.DIE, ContainerEventKind.DESTROY):
            owner = self.member_of.pop(info.name, None)
            if owner is not None and owner in self.services:
                self.services[owner].replicas.pop(info.name, None)
                if not self.may_act():
                    self.services[owner].observed["in"] = event.timestamp
                if not self.services[owner].replicas:
                    del self.services[owner]

    def _stored_startup(self, key: ServiceKey) -> LearnedStartup | None:
        try:
            stored = self.store.startup(key)
        except sqlite3.Error as err:
            self._state_failed(f"reading {key}'s start-up", err)
            return None
        self._state_ok()
        return stored

    def _state_failed(self, what: str, err: sqlite3.Error) -> None:
        """The state file refused a read or write the engine can do without: counted,
        logged once per outage, and shown in health until the next one succeeds."""
        self.state_errors += 1
        if self.state_problem is None:
            log.error("rules: state file: %s failed: %s", what, err)
        self.state_problem = f"state file: {what} failed: {err}"

    def _state_ok(self) -> None:
        if self.state_problem is not None:
            log.info("rules: state file works again")
            self.state_problem = None

    @staticmethod
    def _replica(info: ContainerInfo, policy: Policy | None, seen: float) -> Replica:
        started = info.started_at or seen
        delay = policy.warmup if policy else 0.0
        for label in PROBE_INITIAL_DELAY:
            with contextlib.suppress(ValueError):  # a bad probe label is the probe's to report
                delay = max(delay, float(info.labels.get(label, 0)))
        needs_probe = any(label in info.labels for label in PROBE_LABELS)
        return Replica(info, started + delay, needs_probe)

    def _set_policy(self, state: ServiceState, result: PolicyResult) -> None:
        if result == state.result:
            return
        was_invalid = bool(state.result.errors)
        state.result = result
        state.values.clear()
        state.implied.clear()
        if result.errors:
            log.warning("service %s: policy disabled: %s", state.key, "; ".join(result.errors))
            self.bus.publish(PolicyProblem(state.key, result.errors, self.clock()))
            return
        if was_invalid:
            self.bus.publish(PolicyProblem(state.key, (), self.clock()))  # fixed
        if result.policy is not None:
            log.info(
                "service %s: policy %s",
                state.key,
                result.policy.model_dump(exclude_none=True, exclude_defaults=True),
            )

    def on_samples(self, samples: Iterable[Sample]) -> list[Decision]:
        if not self.member_of and not self.by_service_label:
            return []  # no service to feed
        touched: set[ServiceKey] = set()
        # Inputs share one labels tuple among a series' samples: look each up once.
        identities: dict[int, tuple[str, str]] = {}
        for sample in samples:
            identity = identities.get(id(sample.labels))
            if identity is None:
                identity = identities[id(sample.labels)] = (
                    sample.label("name"),
                    sample.label("service"),
                )
            name, service = identity
            key = self.member_of.get(name) if name else None
            if key is not None:
                state = self.services[key]
                replica = state.replicas[name]
                replica.sampled = True
                if sample.name == "probe_success" and sample.value == 1.0:
                    replica.probe_ok = True
                policy = state.result.policy
                if policy is not None and policy.reads(sample.name) and self._finite(sample):
                    replica.latest[sample.name] = (sample.timestamp, sample.value)
                    touched.add(key)
                continue
            key = self.by_service_label.get(service)
            if key is not None and key in self.services:
                state = self.services[key]
                policy = state.result.policy
                if policy is not None and policy.reads(sample.name) and self._finite(sample):
                    state.service_values[sample.name] = (sample.timestamp, sample.value)
                    touched.add(key)
        decisions = []
        for key in touched:
            state = self.services[key]
            try:
                decision = self.evaluate(state)
            except Exception as err:
                self._disable(state, err)
                continue
            if decision is not None:
                decisions.append(decision)
        return decisions

    def _finite(self, sample: Sample) -> bool:
        """NaN and ±inf are exported as they came, but never enter a window."""
        if math.isfinite(sample.value):
            return True
        self.non_finite += 1
        return False

    def _disable(self, state: ServiceState, err: Exception) -> None:
        """One service's evaluation raised: its policy is off, with the reason, as for a bad
        label, until its labels change; every other service goes on."""
        self.evaluation_errors += 1
        log.error("service %s: evaluating its policy raised", state.key, exc_info=err)
        error = f"evaluation failed: {type(err).__name__}: {err}"
        self._set_policy(state, PolicyResult(None, (error,), declared=True))

    # -- evaluation ----------------------------------------------------------------------
    def _ready(self, state: ServiceState, now: float) -> list[Replica]:
        ready = []
        for replica in state.replicas.values():
            was_ready = replica.ready_since is not None
            if replica.ready(now):
                ready.append(replica)
                if not was_ready:
                    self._learn_startup(state, replica, now)
        return ready

    def _learn_startup(self, state: ServiceState, replica: Replica, now: float) -> None:
        """A replica made by our last scale-out just became ready: how long that took,
        kept in the store so a restart and `ebbflow explain` know it."""
        decided = state.last_scale_out
        started = replica.info.started_at
        if decided is None or (started and started < decided):
            return
        took = now - decided
        before = state.startup
        smoothed = (
            took
            if before is None
            else STARTUP_SMOOTHING * took + (1 - STARTUP_SMOOTHING) * before.seconds
        )
        seen = before.seen + 1 if before else 1
        state.startup = LearnedStartup(smoothed, took, seen, now)
        try:
            self.store.record_startup(state.key, state.startup)
        except sqlite3.Error as err:  # a full disk: learned all the same, in memory
            self._state_failed(f"recording {state.key}'s start-up", err)
        else:
            self._state_ok()

    def _observe(
        self,
        state: ServiceState,
        rule: MetricRule,
        policy: Policy,
        ready: list[Replica],
        now: float,
    ) -> bool:
        """Add this instant's value and implied replicas to a rule's windows; False when
        its data is missing or stale."""
        stale_before = now - max(10.0, policy.window)
        values = [
            r.latest[rule.metric][1]
            for r in ready
            if rule.metric in r.latest and r.latest[rule.metric][0] >= stale_before
        ]
        if values:
            value = max(values) if rule.aggregation != "avg" else sum(values) / len(values)
            implied = len(values) * value / rule.target if rule.target else float(len(values))
        elif (
            rule.metric in state.service_values
            and state.service_values[rule.metric][0] >= stale_before
            and ready
        ):
            total = state.service_values[rule.metric][1]  # a service-wide number, e.g. a queue
            value = total / len(ready) if rule.target else total
            implied = total / rule.target if rule.target else float(len(ready))
        else:
            return False
        state.values.setdefault(rule.id, RingWindow()).add(now, bounded(value))
        state.implied.setdefault(rule.id, RingWindow()).add(now, bounded(implied))
        recent = state.values[rule.id].aggregate(now - SATURATION_WINDOW, "avg")
        if rule.metric == CPU_METRIC and recent is not None and recent >= SATURATED:
            state.saturated_at[rule.id] = now  # for a while, not one noisy point
        return True

    def _recommend(
        self,
        state: ServiceState,
        rule: MetricRule,
        policy: Policy,
        ready: int,
        now: float,
    ) -> Recommendation:
        since = now - policy.window
        value = state.values[rule.id].aggregate(since, rule.aggregation)
        implied_window = state.implied[rule.id]
        implied = implied_window.aggregate(since, rule.aggregation)
        assert value is not None and implied is not None
        current = state.count
        if not rule.proportional:
            replicas, why = recommend_step(rule, value, current, policy.step)
            return Recommendation(rule, replicas, why, value)
        replicas, why = recommend_proportional(
            rule, value, implied, current, ready, policy.tolerance
        )
        assert rule.target is not None
        horizon = self.horizon(state, policy)
        line = self._line(state, rule, policy, horizon, now)
        load, noise = implied, line.noise if line else implied_window.spread(since)
        if line is not None:
            rise = line.slope * horizon if line.rising(TREND_Z) else 0.0
            load = max(line.level + rise, 0.0)
            if load > replicas and load / max(ready, 1) > 1 + policy.tolerance:
                replicas = replica_count(load, replicas)
                why = (
                    f"{rule.label} trend +{line.slope * 60:.3g} replicas/min, forecast "
                    f"{load:.1f} replicas in {horizon:.0f}s at target {rule.show(rule.target)}"
                    if rise
                    else f"{rule.label} level {rule.show(load * rule.target / max(ready, 1))}"
                    f" > target {rule.show(rule.target)}"
                )
        growth = saturation_growth(horizon)
        boosted = math.ceil(growth * ready - 1e-9)
        if state.saturated_at.get(rule.id) == now and boosted > replicas:
            # Saturated: the real demand is above what the replicas can show, by an
            # unknown amount: grow by a factor, larger when each round costs a longer
            # start-up, rather than by what is visible.
            replicas = boosted
            why = f"{rule.label} saturated, ×{growth:.2g}"
        keep = 0
        if rule.metric in PERCENT_METRICS:
            # A scale-in keeps what the load's peak of the last minutes needed at 100 %:
            # that is what the next minutes may bring back, and bringing it back costs
            # a start-up of violations.
            memory = max(PEAK_MEMORY, PEAK_MEMORY_STARTUPS * horizon)
            peak = implied_window.aggregate(now - memory, "max")
            keep = replica_count(rule.target / 100 * (peak or 0.0), 0)
        if rule.metric in PERCENT_METRICS and policy.headroom > 0 and noise is not None:
            # The target is about the mean; running out of capacity is about the tail. Keep
            # load + headroom·σ within 100 % (costly only at low counts).
            needed = rule.target / 100 * (load + policy.headroom * noise)
            if replica_count(needed, 0) > max(replicas, ready):
                replicas = replica_count(needed, 0)
                why = (
                    f"{rule.label} {rule.aggregation} {rule.show(value)}, load "
                    f"{needed:.1f} cores with {policy.headroom:g}σ of noise"
                )
        return Recommendation(rule, replicas, why, value, keep)

    @staticmethod
    def _line(
        state: ServiceState, rule: MetricRule, policy: Policy, horizon: float, now: float
    ) -> Line | None:
        """Predictive mode: capacity ordered now serves one start-up from now, so the load
        is read on a line through at least two start-ups of points. None in other modes,
        and after saturation: saturated points only bound the load from below."""
        if policy.mode != "predictive":
            return None
        span = max(policy.window, TREND_STARTUPS * horizon, MIN_TREND_SPAN)
        if now - state.saturated_at.get(rule.id, -math.inf) <= span:
            return None
        return state.implied[rule.id].fit(now - span, now)

    @staticmethod
    def horizon(state: ServiceState, policy: Policy) -> float:
        """How far ahead capacity ordered now arrives: the learned start-up time, or the
        policy's first guess until one was seen."""
        return state.startup.seconds if state.startup is not None else policy.startup

    def _action_under_way(self, service: ServiceKey, now: float) -> bool:
        since = self.in_flight.get(service)
        if since is not None and now - since > self.action_deadline:
            log.warning(
                "service %s: no outcome for its last action after %gs; deciding again",
                service,
                self.action_deadline,
            )
            del self.in_flight[service]
            return False
        return since is not None

    @staticmethod
    def _converging(state: ServiceState, now: float) -> bool:
        if state.converging is None:
            return False
        target, deadline = state.converging
        if state.count == target or now >= deadline:
            if state.count != target:
                log.warning(
                    "service %s: %d replicas %gs after an action asked for %d; deciding again",
                    state.key,
                    state.count,
                    CONVERGE_DEADLINE,
                    target,
                )
            state.converging = None
            return False
        return True

    def evaluate(self, state: ServiceState) -> Decision | None:
        policy = state.result.policy
        if policy is None or state.result.errors or not state.in_scope:
            return None
        now = self.clock()
        ready = self._ready(state, now)
        current = state.count
        recommendations: list[Recommendation] = []
        missing: list[MetricRule] = []
        for rule in policy.rules:
            if self._observe(state, rule, policy, ready, now):
                recommendations.append(self._recommend(state, rule, policy, len(ready), now))
            else:
                missing.append(rule)
        state.averages = {r.rule.id: r.value for r in recommendations if r.value is not None}
        if missing:
            if policy.on_missing == "hold" or (not recommendations and policy.fallback is None):
                return None
            if policy.fallback is not None:
                recommendations += [
                    Recommendation(
                        r, policy.fallback, f"{r.label} missing, fallback {policy.fallback}", None
                    )
                    for r in missing
                ]
        if (
            not recommendations
            or self._action_under_way(state.key, now)
            or self._converging(state, now)
        ):
            return None
        best = max(recommendations, key=lambda r: r.replicas)
        desired, why = best.replicas, best.why
        state.recommended.add(now, desired)
        if desired < current:
            if missing:
                return None  # never scale in on missing or stale data
            held = state.recommended.aggregate(now - policy.stabilization_window, "max")
            keep = max(r.keep for r in recommendations)
            desired = max(desired, int(held or desired), keep)
        elif desired > current and policy.stabilization_up > 0:
            # Out only as far as every recommendation of the last moments agrees: one
            # noisy point is not a rise.
            agreed = state.recommended.aggregate(now - policy.stabilization_up, "min")
            desired = max(current, min(desired, int(agreed or desired)))
        desired = min(desired, policy.max_replicas)
        desired = max(desired, policy.min_replicas)
        if current > policy.max_replicas:
            why = f"{current} replicas above max_replicas {policy.max_replicas}"
        elif current < policy.min_replicas:
            why = f"{current} replicas below min_replicas {policy.min_replicas}"
        else:
            # By default as HPA's: double or add 4 (the larger), or grow as saturation does
            growth = saturation_growth(self.horizon(state, policy))
            up_limit = (
                policy.max_up
                if policy.max_up is not None
                else max(4, current, math.ceil((growth - 1) * current - 1e-9))
            )
            desired = min(desired, current + up_limit)
            if policy.max_down is not None:
                desired = max(desired, current - policy.max_down)
        if desired == current:
            return None
        # Only back within min..max (a deploy started short, say): no load asked for it,
        # so no cooldown holds it and it starts none.
        bounds = (current < policy.min_replicas and desired == policy.min_replicas) or (
            current > policy.max_replicas and desired == policy.max_replicas
        )
        direction = "out" if desired > current else "in"
        cooldown = policy.up_cooldown if direction == "out" else policy.down_cooldown
        last = self.store.last_decision_time(state.key, self.dry_run, direction)
        last = max(last or 0.0, state.observed.get(direction, 0.0)) or None
        if not bounds and last is not None and now - last < cooldown:
            return None
        if not self.may_act() or paused(self.paused, state.key):
            return None  # a standby (the leader decides), or paused by the operator
        return self._decide(
            state,
            policy,
            current,
            desired,
            why,
            recommendations,
            len(ready),
            now,
            "bounds" if bounds else "policy",
        )

    def _decide(
        self,
        state: ServiceState,
        policy: Policy,
        current: int,
        desired: int,
        why: str,
        recommendations: list[Recommendation],
        ready: int,
        now: float,
        origin: DecisionOrigin = "policy",
    ) -> Decision:
        inputs: dict[str, float] = {
            "replicas": current,
            "ready": ready,
            "window": policy.window,
            "startup": round(self.horizon(state, policy), 3),
            "startup_learned": int(state.startup is not None),
        }
        for r in recommendations:
            if r.value is not None:
                inputs[f"{r.rule.id}_{r.rule.aggregation}"] = round(r.value, 4)
            inputs[f"{r.rule.id}_recommends"] = r.replicas
        decision = Decision(
            service=state.key,
            from_replicas=current,
            to_replicas=desired,
            reason=f"{state.key.name}: {current}→{desired}, {why} over {policy.window:g}s",
            timestamp=now,
            inputs=inputs,
            dry_run=self.dry_run,
            origin=origin,
        )
        self.store.record(decision)
        self.in_flight[state.key] = now
        if desired > current:
            state.last_scale_out = now
        self.decisions[(str(decision.service), decision.direction)] += 1
        log.info("decision%s: %s", " (dry run)" if self.dry_run else "", decision.reason)
        self.bus.publish(decision)
        return decision

    # -- telemetry -----------------------------------------------------------------------
    def telemetry(self, now: float) -> Iterable[Sample]:
        for name, count, help_text in (
            (
                "ebbflow_rules_non_finite_samples_total",
                self.non_finite,
                "Samples a policy reads that were NaN or ±inf, kept out of every window.",
            ),
            (
                "ebbflow_rules_evaluation_errors_total",
                self.evaluation_errors,
                "Evaluations of one service's policy that raised (the policy is disabled).",
            ),
            (
                "ebbflow_rules_event_errors_total",
                self.event_errors,
                "Events the rule engine could not handle.",
            ),
            (
                "ebbflow_rules_state_errors_total",
                self.state_errors,
                "Reads and writes of learned start-up times the state file refused.",
            ),
        ):
            yield Sample(name, count, (), now, "counter", help_text)
        # Every service's counters exist from 0, so the first decision is an increase.
        declared = {str(key) for key, state in self.services.items() if state.result.declared}
        counted = {key for key, _ in self.decisions} | declared
        for service in sorted(counted):
            for direction in ("out", "in"):
                yield Sample(
                    "ebbflow_decisions_total",
                    self.decisions[(service, direction)],
                    labels_of({"service": service, "direction": direction}),
                    now,
                    "counter",
                    "Scaling decisions taken since start, by service and direction "
                    "(dashboards annotate them).",
                )
        for key, state in self.services.items():
            if not state.result.declared:
                continue
            labels = labels_of({"service": str(key)})
            yield Sample(
                "ebbflow_policy_valid",
                0.0 if state.result.errors else 1.0,
                labels,
                now,
                "gauge",
                "1 when the service's policy labels are valid, else 0.",
            )
            yield Sample(
                "ebbflow_policy_errors",
                len(state.result.errors),
                labels,
                now,
                "gauge",
                "Validation errors in the service's policy labels.",
            )
            yield Sample(
                "ebbflow_service_replicas",
                state.count,
                labels,
                now,
                "gauge",
                "Running replicas of a service with a policy.",
            )
            yield Sample(
                "ebbflow_service_in_scope",
                1.0 if state.in_scope else 0.0,
                labels,
                now,
                "gauge",
                "1 when the service lies in this instance's scope (it may act), else 0.",
            )
            policy = state.result.policy
            if policy is None:
                continue
            for rule in policy.rules:
                rule_labels = labels_of({"service": str(key), "metric": rule.label})
                if rule.id in state.averages:
                    yield Sample(
                        "ebbflow_service_metric_value",
                        state.averages[rule.id],
                        rule_labels,
                        now,
                        "gauge",
                        "The window's value of a metric a service scales on.",
                    )
                for bound, value in (("target", rule.target), ("max", rule.max), ("min", rule.min)):
                    if value is not None:
                        yield Sample(
                            f"ebbflow_policy_{bound}",
                            value,
                            rule_labels,
                            now,
                            "gauge",
                            f"The service's {bound} for a metric.",
                        )
