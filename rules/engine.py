"""The rule engine: each arriving sample re-evaluates only the services whose policy reads it.

The loop, in one place:

    sample → the replica's latest value (tracking) → windows → each metric's strategy
    recommends (rules/strategies) → the largest wins → the gate (rules/gate.py) decides
    → Decision on the bus, recorded → the action runner carries it out.

What a service is (its replicas, policy, scope, pause, owner) is the catalog's
(ebbflow/catalog.py); the engine keeps only what deciding needs: readiness, windows, the
learned start-up, cooldown times a standby saw.
"""

from __future__ import annotations

import collections
import logging
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence

from ebbflow.config import RulesConfig
from ebbflow.context import DecisionContext
from ebbflow.metrics import Desc
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    Decision,
    DecisionOrigin,
    EngineConnection,
    Sample,
    SampleBatch,
    ServiceKey,
)
from ebbflow.names import PROBE_SUCCESS, TELEMETRY_SOURCE
from ebbflow.policy import MetricRule, Policy
from ebbflow.state import LearnedStartup

from .gate import GateInput, Verdict, gate
from .strategies import Recommendation, Signal, saturation_growth, strategy_for
from .tracking import Replica, ServiceState

# Seconds within which a deployment creates its replicas (compose and Swarm start them
# together); a replica created later than that after the first was added afterwards.
DEPLOY_SPREAD = 5.0
log = logging.getLogger("ebbflow.rules")

CONVERGE_DEADLINE = 60.0  # seconds the containers get to match an action's replica count
STUCK_AFTER = 30.0  # seconds with events waiting and none handled: not evaluating

NON_FINITE = Desc(
    "ebbflow_rules_non_finite_samples_total",
    "Samples a policy reads that were NaN or ±inf, kept out of every window.",
    "counter",
)
EVALUATION_ERRORS = Desc(
    "ebbflow_rules_evaluation_errors_total",
    "Evaluations of one service's policy that raised (the policy is disabled).",
    "counter",
)
EVENT_ERRORS = Desc(
    "ebbflow_rules_event_errors_total", "Events the rule engine could not handle.", "counter"
)
STATE_ERRORS = Desc(
    "ebbflow_rules_state_errors_total",
    "Reads and writes of learned start-up times the state file refused.",
    "counter",
)
DECISIONS = Desc(
    "ebbflow_decisions_total",
    "Scaling decisions taken since start, by service and direction (dashboards annotate them).",
    "counter",
    ("direction", "service"),
)
METRIC_VALUE = Desc(
    "ebbflow_service_metric_value",
    "The window's value of a metric a service scales on.",
    "gauge",
    ("metric", "service"),
)
UNSEEN = Desc(
    "ebbflow_service_replicas_unseen",
    "Running replicas past their warm-up that send no fresh samples (no agent on their "
    "node, or it is gone); while any do, the service is not scaled in.",
    "gauge",
    ("service",),
)
BOUNDS = {
    bound: Desc(f"ebbflow_policy_{bound}", f"The service's {bound} for a metric.", "gauge",
                ("metric", "service"))
    for bound in ("target", "max", "min")
}  # fmt: skip


def about_services(event: object) -> bool:
    """What the engine is given: everything but ebbflow's own telemetry, which is about
    ebbflow, not a service (a policy reading it would scale on its own bookkeeping), and
    came each second only to be passed over."""
    return not (isinstance(event, SampleBatch) and event.source == TELEMETRY_SOURCE)


class RuleEngine:
    name = "rules"

    def __init__(
        self,
        ctx: DecisionContext,
        defaults: RulesConfig | None = None,
        action_deadline: float = 300.0,
    ) -> None:
        self.bus = ctx.bus
        self.catalog = ctx.catalog
        self.store = ctx.store
        self.clock = ctx.clock
        self.defaults = defaults or RulesConfig()
        self.dry_run = ctx.dry_run
        self.action_deadline = action_deadline
        self.subscription = ctx.bus.subscribe(
            "rules",
            ContainerEvent,
            SampleBatch,
            ActionResult,
            EngineConnection,
            capacity=4096,
            accept=about_services,
        )
        self.services: dict[ServiceKey, ServiceState] = {}
        self.member_of: dict[str, ServiceKey] = {}  # container name → service
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

    def reconfigure(self, defaults: RulesConfig) -> None:
        """New rule defaults (SIGHUP); the catalog parses every policy again with them."""
        self.defaults = defaults

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
        if isinstance(event, SampleBatch):  # a repeat holds nothing new (model.py)
            return [] if event.repeat else self.on_samples(event.samples, event.containers)
        if isinstance(event, ContainerEvent):
            self.on_container(event)
        elif isinstance(event, ActionResult):
            decision = event.decision
            if decision.origin in ("policy", "bounds"):
                self.in_flight.pop(decision.service, None)
            state = self.services.get(decision.service)
            if state is not None and event.ok and not decision.dry_run:
                state.converging = (decision.to_replicas, self.clock() + CONVERGE_DEADLINE)
        elif isinstance(event, EngineConnection) and event.connected:
            now = self.clock()
            for state in self.services.values():  # what it missed meanwhile is unknown
                state.refresh(now)
        return []

    def on_container(self, event: ContainerEvent) -> None:
        """Readiness is tracked per replica from its start; the catalog has the rest."""
        info = event.container
        if event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            key = self.catalog.service_of(info.id)
            service = self.catalog.get(key) if key else None
            if key is None or service is None:
                return  # gone again before its start was handled
            if key not in self.services:
                self.services[key] = ServiceState(
                    key, startup=self._stored_startup(key), fresh_since=self.clock()
                )
            state = self.services[key]
            if info.name not in state.replicas and state.replicas and not self.catalog.owns(key):
                state.observed["out"] = event.timestamp
            state.follow(service.policy, self.clock())
            state.replicas[info.name] = Replica.of(info, service.policy.policy, event.timestamp)
            self.member_of[info.name] = key
        elif event.kind in (ContainerEventKind.DIE, ContainerEventKind.DESTROY):
            owner = self.member_of.pop(info.name, None)
            if owner is not None and owner in self.services:
                state = self.services[owner]
                if info.name in state.replicas and not self._scaling_in(state):
                    # kept in case its engine turns out gone (not one ebbflow removed)
                    state.lost[info.name] = (info.node, event.timestamp, len(state.replicas))
                state.replicas.pop(info.name, None)
                if not self.catalog.owns(owner):
                    state.observed["in"] = event.timestamp
                if not state.replicas and not self._down(info.node):
                    del self.services[owner]

    def _scaling_in(self, state: ServiceState) -> bool:
        """A scale-in of ours is under way or its replicas are still going."""
        if state.key in self.in_flight:
            return True
        converging = state.converging
        return converging is not None and converging[0] < len(state.replicas)

    def _down(self, node: str) -> bool:
        """The engine was connected and is no longer (stopped, or its link is cut)."""
        return self.catalog.down(node)

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

    # -- samples -------------------------------------------------------------------------
    def on_samples(
        self, samples: Sequence[Sample], containers: tuple[tuple[str, int], ...] = ()
    ) -> list[Decision]:
        """`containers`: the batch's runs of samples about one container each (model.py
        SampleBatch), asked about once a run; the samples outside them one by one."""
        if not self.member_of:
            return []  # no service to feed
        touched: set[ServiceKey] = set()
        start = 0
        for name, stop in containers:
            key = self.member_of.get(name)
            if key is None:  # not a replica: its samples may still name a service
                self._samples(samples[start:stop], touched)
            elif self._policy_reads(key):
                for sample in samples[start:stop]:
                    self._replica_sample(key, name, sample, touched)
            start = stop
        self._samples(samples[start:] if start else samples, touched)
        return self._evaluate_all(touched)

    def _samples(self, samples: Iterable[Sample], touched: set[ServiceKey]) -> None:
        # Inputs share one labels tuple among a series' samples: look each up once, with
        # whether a policy reads the replica's service at all (most samples of a host are
        # of containers no policy reads: they cost one lookup each).
        identities: dict[int, tuple[str, ServiceKey | None, ServiceKey | None, bool]] = {}
        for sample in samples:
            identity = identities.get(id(sample.labels))
            if identity is None:
                identity = identities[id(sample.labels)] = self._identity(sample)
            name, key, named, read = identity
            if key is not None:
                if read:
                    self._replica_sample(key, name, sample, touched)
                continue
            state = self.services.get(named) if named is not None else None
            if named is not None and state is not None and self._reads(state, sample):
                state.service_values[sample.name] = (sample.timestamp, sample.value)
                touched.add(named)

    def _identity(self, sample: Sample) -> tuple[str, ServiceKey | None, ServiceKey | None, bool]:
        """The replica's name and service, whether a policy reads that replica (one that
        comes later starts from its next samples), and else the service a `service` label
        names (looked up once per labels tuple: the lookup goes over every service)."""
        name = sample.label("name")
        key = self.member_of.get(name) if name else None
        if key is not None:
            return name, key, None, self._policy_reads(key)
        text = sample.label("service")
        return name, None, self.catalog.service_named(text) if text else None, False

    def _policy_reads(self, key: ServiceKey) -> bool:
        service = self.catalog.get(key)
        return service is not None and service.policy.policy is not None

    def _replica_sample(
        self, key: ServiceKey, name: str, sample: Sample, touched: set[ServiceKey]
    ) -> None:
        state = self.services[key]
        replica = state.replicas[name]
        replica.sampled = True
        replica.last_seen = max(replica.last_seen, sample.timestamp)
        if sample.name == PROBE_SUCCESS and sample.value == 1.0:
            replica.probe_ok = True
        if self._reads(state, sample):
            replica.latest[sample.name] = (sample.timestamp, sample.value)
            touched.add(key)

    def _reads(self, state: ServiceState, sample: Sample) -> bool:
        policy = state.policy.policy if state.policy is not None else None
        return policy is not None and policy.reads(sample.name) and self._finite(sample)

    def _finite(self, sample: Sample) -> bool:
        """NaN and ±inf are exported as they came, but never enter a window."""
        if math.isfinite(sample.value):
            return True
        self.non_finite += 1
        return False

    def _evaluate_all(self, touched: set[ServiceKey]) -> list[Decision]:
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

    def _disable(self, state: ServiceState, err: Exception) -> None:
        """One service's evaluation raised: its policy is off, with the reason, as for a bad
        label, until its labels change; every other service goes on."""
        self.evaluation_errors += 1
        log.error("service %s: evaluating its policy raised", state.key, exc_info=err)
        self.catalog.disable_policy(state.key, f"evaluation failed: {type(err).__name__}: {err}")
        service = self.catalog.get(state.key)
        if service is not None:
            state.follow(service.policy, self.clock())

    # -- evaluation ----------------------------------------------------------------------
    def _ready(self, state: ServiceState, now: float) -> list[Replica]:
        ready, new = state.ready(now)
        for replica in new:
            if state.learn_startup(replica, now):
                self._record_startup(state)
        return ready

    def _record_startup(self, state: ServiceState) -> None:
        """Kept in the store so a restart and `ebbflow explain` know it."""
        assert state.startup is not None
        try:
            self.store.record_startup(state.key, state.startup)
        except sqlite3.Error as err:  # a full disk: learned all the same, in memory
            self._state_failed(f"recording {state.key}'s start-up", err)
        else:
            self._state_ok()

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

    def _converging(self, state: ServiceState, count: int, now: float) -> bool:
        if state.converging is None:
            return False
        target, deadline = state.converging
        if count == target or now >= deadline:
            if count != target:
                log.warning(
                    "service %s: %d replicas %gs after an action asked for %d; deciding again",
                    state.key,
                    count,
                    CONVERGE_DEADLINE,
                    target,
                )
            state.converging = None
            return False
        return True

    @staticmethod
    def _recommendations(
        state: ServiceState, policy: Policy, current: int, ready: list[Replica], now: float
    ) -> Iterator[Recommendation | MetricRule]:
        """Each rule's recommendation, or the rule itself when its data is missing."""
        for rule in policy.rules:
            if not state.observe(rule, policy, ready, now):
                yield rule
                continue
            signal = Signal(
                rule,
                policy,
                state.values[rule.id],
                state.implied[rule.id],
                current,
                len(ready),
                now,
                state.horizon(policy),
                state.saturated_at.get(rule.id),
            )
            yield strategy_for(rule, policy).recommend(signal)

    def evaluate(self, state: ServiceState) -> Decision | None:
        service = self.catalog.get(state.key)
        if service is None:
            return None
        state.follow(service.policy, self.clock())
        policy = service.policy.policy
        if policy is None or service.policy.errors or not service.in_scope:
            return None
        now = self.clock()
        ready = self._ready(state, now)
        current = service.count
        recommendations: list[Recommendation] = []
        missing: list[MetricRule] = []
        for item in self._recommendations(state, policy, current, ready, now):
            if isinstance(item, Recommendation):
                recommendations.append(item)
            else:
                missing.append(item)
        state.averages = {r.rule.id: r.value for r in recommendations if r.value is not None}
        fallback = policy.fallback
        if missing and fallback is not None:
            recommendations += [
                Recommendation(r, fallback, f"{r.label} missing, fallback {fallback}", None)
                for r in missing
            ]
        best = max(recommendations, key=lambda r: r.replicas) if recommendations else None
        recurring = state.rhythm_need(now)
        in_flight = best is not None and self._action_under_way(state.key, now)
        verdict = gate(
            GateInput(
                current=current,
                recommended=best.replicas if best else None,
                why=best.why if best else "",
                now=now,
                missing=bool(missing),
                hold_on_missing=policy.on_missing == "hold"
                or (not recommendations and policy.fallback is None),
                in_flight=in_flight,
                converging=not in_flight and self._converging(state, current, now),
                held=self._aggregate(state, now - policy.stabilization_window, "max"),
                agreed=self._aggregate(state, now - policy.stabilization_up, "min"),
                stabilization_up=policy.stabilization_up,
                keep=max(
                    [r.keep for r in recommendations] + [state.rhythm_keep(recurring, current)]
                ),
                recurring=recurring,
                min_replicas=policy.min_replicas,
                max_replicas=policy.max_replicas,
                max_up=policy.max_up,
                max_down=policy.max_down,
                growth=saturation_growth(state.horizon(policy)),
                cooldown_up=policy.up_cooldown,
                cooldown_down=policy.down_cooldown,
                last_out=self._last(state, "out"),
                last_in=self._last(state, "in"),
                owned=self.catalog.owns(state.key),
                paused=self.catalog.paused(state.key),
                blocked=self.catalog.blocked() or "",
                window_gap=max(
                    (state.window_gap(r.rule, policy, now) for r in recommendations), default=0.0
                ),
                unseen=state.partly_seen(policy, now, self._down),
            )
        )
        if verdict.counted and best is not None:
            state.recommended.add(now, best.replicas)
        if not verdict.decided:
            return None
        return self._decide(state, policy, current, verdict, recommendations, ready, now)

    @staticmethod
    def _aggregate(state: ServiceState, since: float, how: str) -> int | None:
        value = state.recommended.aggregate(since, "max" if how == "max" else "min")
        return None if value is None else int(value)

    def _last(self, state: ServiceState, direction: str) -> float | None:
        """The last decision in this direction: ours (the store, so a restart keeps the
        cooldown), or the previous owner's as this instance saw it: replicas come and go
        while it stands by, and a service of several replicas that it never scaled was
        last scaled out no earlier than its newest replica's creation (what a new owner
        of a Kafka partition finds on the engine; it never reads another's state)."""
        last = self.store.last_decision_time(state.key, self.dry_run, direction)
        seen = state.observed.get(direction, 0.0)
        if last is None and direction == "out" and len(state.replicas) > 1:
            seen = max(seen, self._added_later(state))
        return max(last or 0.0, seen) or None

    def _added_later(self, state: ServiceState) -> float:
        """When the newest replica was created, if it came after the service's first ones
        (a deployment creates its replicas together) and not by this instance's hand: the
        previous owner's scale-out, as the engine shows it (0.0 when there is none)."""
        created = sorted(r.info.created for r in state.replicas.values() if r.info.created)
        if len(created) < 2 or created[-1] - created[0] <= DEPLOY_SPREAD:
            return 0.0
        if self.store.has_decisions(state.key, self.dry_run):
            return 0.0
        return created[-1]

    def _decide(
        self,
        state: ServiceState,
        policy: Policy,
        current: int,
        verdict: Verdict,
        recommendations: list[Recommendation],
        ready: list[Replica],
        now: float,
    ) -> Decision:
        assert verdict.to is not None
        desired = verdict.to
        inputs: dict[str, float] = {
            "replicas": current,
            "ready": len(ready),
            # the engines (nodes) the ready replicas run on: 1 when ebbflow drives one
            "ready_nodes": len({replica.info.node for replica in ready}),
            "window": policy.window,
            "startup": round(state.horizon(policy), 3),
            "startup_learned": int(state.startup is not None),
        }
        recurring = state.rhythm_need(now)
        if recurring:  # the load's peaks recur: what the highest of them needs is held
            inputs["recurring_peaks_need"] = recurring
        for r in recommendations:
            if r.value is not None:
                inputs[f"{r.rule.id}_{r.rule.aggregation}"] = round(r.value, 4)
            inputs[f"{r.rule.id}_recommends"] = r.replicas
        origin: DecisionOrigin = verdict.origin
        decision = Decision(
            service=state.key,
            from_replicas=current,
            to_replicas=desired,
            reason=f"{state.key.name}: {current}→{desired}, {verdict.why} over {policy.window:g}s",
            timestamp=now,
            inputs=inputs,
            dry_run=self.dry_run,
            origin=origin,
            owner=self.catalog.owner(state.key),
            epoch=self.catalog.epoch(),
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
        yield NON_FINITE.sample(self.non_finite, now)
        yield EVALUATION_ERRORS.sample(self.evaluation_errors, now)
        yield EVENT_ERRORS.sample(self.event_errors, now)
        yield STATE_ERRORS.sample(self.state_errors, now)
        # Every service's counters exist from 0, so the first decision is an increase.
        declared = {
            str(key)
            for key, service in self.catalog.services.items()
            if service.policy.declared and key in self.services
        }
        counted = {key for key, _ in self.decisions} | declared
        for name in sorted(counted):
            for direction in ("out", "in"):
                yield DECISIONS.sample(self.decisions[(name, direction)], now, direction, name)
        for key, state in self.services.items():
            policy = state.policy.policy if state.policy is not None else None
            if policy is None:
                continue
            yield UNSEEN.sample(state.unseen(policy, now), now, str(key))
            for rule in policy.rules:
                if rule.id in state.averages:
                    yield METRIC_VALUE.sample(state.averages[rule.id], now, rule.label, str(key))
                for bound, value in (("target", rule.target), ("max", rule.max), ("min", rule.min)):
                    if value is not None:
                        yield BOUNDS[bound].sample(value, now, rule.label, str(key))
