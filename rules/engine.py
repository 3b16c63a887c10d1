"""The rule engine: event-driven step scaling.

Each batch of container samples updates per-container windows and re-evaluates only the
services those containers belong to. A decision is recorded (with its reason and inputs)
before it is published for the scaler, and a service's next decision waits for both the
outcome of the last one and its cooldown, which is read from the store so that a restart
does not shorten it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ebbflow.bus import Bus
from ebbflow.config import RulesConfig
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    PolicyProblem,
    Sample,
    SampleBatch,
    ServiceKey,
    labels_of,
)
from ebbflow.services import service_key
from ebbflow.state import DecisionStore

from .policy import PolicyResult, ScalePolicy, parse_policy
from .window import TimeWindow

log = logging.getLogger("ebbflow.rules")

CPU_METRIC = "ebbflow_container_cpu_percent"
MEMORY_METRIC = "ebbflow_container_memory_percent"
WATCHED_METRICS = {CPU_METRIC: "cpu", MEMORY_METRIC: "memory"}


@dataclass
class ServiceState:
    key: ServiceKey
    containers: dict[str, ContainerInfo] = field(default_factory=dict)  # by container name
    result: PolicyResult = field(default_factory=lambda: PolicyResult(None))
    averages: dict[str, float] = field(default_factory=dict)

    @property
    def replicas(self) -> int:
        return len(self.containers)


def group_services(
    containers: Iterable[ContainerInfo], defaults: RulesConfig | None = None
) -> dict[ServiceKey, ServiceState]:
    """Services and their parsed policies, from running containers (also used by the CLI)."""
    services: dict[ServiceKey, ServiceState] = {}
    for info in sorted(containers, key=lambda c: c.started_at):
        key = service_key(info.labels, info.name)
        state = services.setdefault(key, ServiceState(key))
        state.containers[info.name] = info
        # The newest replica's labels win: operators change policies by recreating.
        state.result = parse_policy(info.labels, defaults)
    return services


def decide(
    policy: ScalePolicy, replicas: int, averages: dict[str, float]
) -> tuple[int, str] | None:
    """The step rule: (target replicas, why), or None to stay.

    Out when any metric is above its max; in only when every metric that has a min is
    below it and none is above its max; always within [min_instances, max_instances].
    """
    low, high = policy.min_instances, policy.max_instances
    if replicas > high:
        return high, f"{replicas} replicas above max_instances {high}"
    if replicas < low:
        return low, f"{replicas} replicas below min_instances {low}"
    over, under = [], []
    for metric, value in averages.items():
        top, bottom = getattr(policy, f"max_{metric}"), getattr(policy, f"min_{metric}")
        if top is not None and value > top:
            over.append(f"{metric} avg {value:.1f}% > max {top:g}%")
        if bottom is not None:
            under.append((value < bottom, f"{metric} avg {value:.1f}% < min {bottom:g}%"))
    window = f" over {policy.window:g}s"
    if over:
        target = min(high, replicas + policy.step)
        return (target, ", ".join(over) + window) if target != replicas else None
    if under and all(below for below, _ in under):
        target = max(low, replicas - policy.step)
        return (
            (target, ", ".join(text for _, text in under) + window) if target != replicas else None
        )
    return None


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
    ) -> None:
        self.bus = bus
        self.store = store
        self.clock = clock
        self.defaults = defaults or RulesConfig()
        self.dry_run = dry_run
        self.action_deadline = action_deadline
        self.subscription = bus.subscribe(
            "rules", ContainerEvent, SampleBatch, ActionResult, capacity=4096
        )
        self.services: dict[ServiceKey, ServiceState] = {}
        self.member_of: dict[str, ServiceKey] = {}
        self.windows: dict[tuple[str, str], TimeWindow] = {}
        # service → when its decision was published; cleared by the action's result, and
        # expired after `action_deadline` so a lost result cannot freeze a service forever.
        self.in_flight: dict[ServiceKey, float] = {}
        self.decisions = 0

    async def run(self) -> None:
        async for event in self.subscription:
            self.handle(event)

    def handle(self, event: object) -> None:
        if isinstance(event, SampleBatch):
            self.on_samples(event.samples)
        elif isinstance(event, ContainerEvent):
            self.on_container(event)
        elif isinstance(event, ActionResult):
            self.in_flight.pop(event.decision.service, None)

    def on_container(self, event: ContainerEvent) -> None:
        info = event.container
        if event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            key = service_key(info.labels, info.name)
            state = self.services.setdefault(key, ServiceState(key))
            state.containers[info.name] = info
            self.member_of[info.name] = key
            self._set_policy(state, parse_policy(info.labels, self.defaults))
        elif event.kind in (ContainerEventKind.DIE, ContainerEventKind.DESTROY):
            for metric in WATCHED_METRICS.values():
                self.windows.pop((info.name, metric), None)
            owner = self.member_of.pop(info.name, None)
            if owner is not None and owner in self.services:
                self.services[owner].containers.pop(info.name, None)
                if not self.services[owner].containers:
                    del self.services[owner]

    def _set_policy(self, state: ServiceState, result: PolicyResult) -> None:
        if result == state.result:
            return
        state.result = result
        if result.errors:
            log.warning("service %s: policy disabled: %s", state.key, "; ".join(result.errors))
            self.bus.publish(PolicyProblem(state.key, result.errors, self.clock()))
        elif result.policy is not None:
            log.info(
                "service %s: policy %s", state.key, result.policy.model_dump(exclude_none=True)
            )

    def on_samples(self, samples: Iterable[Sample]) -> list[Decision]:
        touched: set[ServiceKey] = set()
        for sample in samples:
            metric = WATCHED_METRICS.get(sample.name)
            if metric is None:
                continue
            container = sample.label("name")
            key = self.member_of.get(container)
            if key is None:
                continue
            policy = self.services[key].result.policy
            if policy is None:
                continue  # no policy, nothing to decide: keep no window
            window = self.windows.get((container, metric))
            if window is None:
                window = self.windows[(container, metric)] = TimeWindow(policy.window)
            window.add(sample.timestamp, sample.value)
            touched.add(key)
        decisions = []
        for key in touched:
            decision = self.evaluate(self.services[key])
            if decision is not None:
                decisions.append(decision)
        return decisions

    def service_averages(
        self, state: ServiceState, policy: ScalePolicy, now: float
    ) -> dict[str, float]:
        """Per metric: the mean over replicas of each replica's window mean."""
        since = now - policy.window
        averages = {}
        for metric in WATCHED_METRICS.values():
            means = [
                m
                for name in state.containers
                if (w := self.windows.get((name, metric))) is not None
                and (m := w.mean(since)) is not None
            ]
            if means:
                averages[metric] = sum(means) / len(means)
        return averages

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

    def evaluate(self, state: ServiceState) -> Decision | None:
        policy = state.result.policy
        if policy is None or state.result.errors:
            return None
        now = self.clock()
        state.averages = self.service_averages(state, policy, now)
        if not state.averages or self._action_under_way(state.key, now):
            return None  # never act on missing data, never two actions at once
        verdict = decide(policy, state.replicas, state.averages)
        if verdict is None:
            return None
        last = self.store.last_decision_time(state.key, self.dry_run)
        if last is not None and now - last < policy.cooldown:
            return None
        target, why = verdict
        decision = Decision(
            service=state.key,
            from_replicas=state.replicas,
            to_replicas=target,
            reason=f"{state.key}: {state.replicas}→{target}, {why}",
            timestamp=now,
            inputs={f"{m}_avg_percent": round(v, 3) for m, v in state.averages.items()}
            | {"replicas": state.replicas},
            dry_run=self.dry_run,
        )
        self.store.record(decision)
        self.in_flight[state.key] = now
        self.decisions += 1
        log.info("decision%s: %s", " (dry run)" if self.dry_run else "", decision.reason)
        self.bus.publish(decision)
        return decision

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield Sample(
            "ebbflow_decisions_total",
            self.decisions,
            (),
            now,
            "counter",
            "Scaling decisions taken since start.",
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
                state.replicas,
                labels,
                now,
                "gauge",
                "Running replicas of a service with a policy.",
            )
            for metric, value in state.averages.items():
                yield Sample(
                    f"ebbflow_service_{metric}_percent",
                    value,
                    labels,
                    now,
                    "gauge",
                    f"Window mean of the service's {metric} percent over replicas.",
                )
            policy = state.result.policy
            if policy is not None:
                for bound in ("max_cpu", "min_cpu", "max_memory", "min_memory"):
                    if (value := getattr(policy, bound)) is not None:
                        yield Sample(
                            f"ebbflow_policy_{bound}_percent",
                            value,
                            labels,
                            now,
                            "gauge",
                            f"The service's {bound} threshold.",
                        )
