"""Replay: a demand trace against a simulated service, driven by an autoscaler.

The model, exactly: the trace gives demand in cores at 1 s steps; each ready replica
serves one core; each ready replica's CPU percent is `min(100, 100 × demand / ready)`; a
new replica becomes ready `start_delay` seconds after the decision; scale-in removes
replicas at once (newest first); the run starts at the policy's initial replica count.
Each second is accounted with the replicas it began with, then the autoscaler sees it.
The start delay may change over the trace (a function of the decision's time).

`EngineAutoscaler` is ebbflow's real RuleEngine — the live code path — fed container
events and CPU samples on a virtual clock; any other autoscaler with `observe` (the
references in references.py: HPA, KPA, Nomad's target-value, AWS target tracking) runs
under the same model.

What a run is scored on (`Summary`): violation seconds (demand above the ready replicas),
unserved core seconds, replica seconds (every replica, starting ones too: they are paid
for), actions, reversals (a move against the previous one's direction), slack as Google's
Autopilot defines it, (provisioned − used) / provisioned over the run, and the reaction
time to each upward step of the trace: seconds from the step to the first replica made
after it being ready.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import yaml

from ebbflow.bus import Bus
from ebbflow.catalog import ServiceCatalog
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.context import DecisionContext
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Sample,
    labels_of,
)
from ebbflow.policy import CPU_METRIC, Policy, parse_policy
from ebbflow.state import DecisionStore

from .engine import RuleEngine

SERVICE = {"com.docker.compose.project": "replay", "com.docker.compose.service": "svc"}


class Autoscaler(Protocol):
    def observe(
        self, t: float, cpu_percent: float | None, ready: int, total: int, demand: float
    ) -> list[tuple[int, str]]:
        """Decisions taken at second `t`, as (replicas wanted, reason). `cpu_percent` is
        what a replica shows (None with none ready); `demand`, in cores, is what only a
        request-level metric sees past 100 % (KPA's concurrency counts queued requests):
        the CPU-based autoscalers do not read it."""
        ...


@dataclass
class Summary:
    violation_seconds: int = 0
    unserved_core_seconds: float = 0.0
    replica_seconds: int = 0
    actions: int = 0
    reversals: int = 0
    used_core_seconds: float = 0.0  # demand served: min(demand, ready) per second
    reactions: list[float | None] = field(default_factory=list)  # per step; None: no new replica

    @property
    def slack(self) -> float:
        """(provisioned − used) / provisioned, as Autopilot (EuroSys'20) reports it."""
        if not self.replica_seconds:
            return 0.0
        return 1 - self.used_core_seconds / self.replica_seconds

    @property
    def reaction(self) -> float | None:
        """The slowest reaction to a step (None without steps, or when one never came)."""
        if not self.reactions or None in self.reactions:
            return None
        return max(r for r in self.reactions if r is not None)


@dataclass
class ReplayResult:
    decisions: list[dict[str, object]] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)

    def as_dict(self) -> dict[str, object]:
        summary = asdict(self.summary)
        summary["unserved_core_seconds"] = round(self.summary.unserved_core_seconds, 3)
        summary["used_core_seconds"] = round(self.summary.used_core_seconds, 3)
        summary["slack"] = round(self.summary.slack, 4)
        return {"decisions": self.decisions, "summary": summary}


def load_trace(path: Path) -> list[tuple[float, float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"t", "demand"} <= set(rows[0]):
        raise ValueError(f"{path}: needs a header with columns t,demand")
    trace = []
    for number, row in enumerate(rows, start=2):
        try:
            trace.append((float(row["t"]), float(row["demand"])))
        except (TypeError, ValueError):
            raise ValueError(f"{path}:{number}: t and demand must be numbers: {row}") from None
    return trace


def load_labels(path: Path) -> dict[str, str]:
    """A YAML mapping, or `key=value` lines as for `docker run --label-file`."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: must be a mapping of labels")
        return {str(k): str(v) for k, v in data.items()}
    labels = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}:{number}: expected key=value, got {line!r}")
        labels[key.strip()] = value.strip()
    return labels


StartDelay = float | Callable[[float], float]  # seconds, or seconds at decision time t


def simulate(
    trace: Sequence[tuple[float, float]],
    scaler: Autoscaler,
    initial: int,
    start_delay: StartDelay = 5.0,
    steps: Sequence[float] = (),
) -> ReplayResult:
    """Run `scaler` over `trace`; `steps` are the times of the trace's upward steps, whose
    reaction times the summary gives."""
    delay_at = start_delay if callable(start_delay) else lambda _t: float(start_delay)
    result = ReplayResult()
    # (decided, ready at) per replica, in creation order: newest last
    replicas: list[tuple[float, float]] = [(-math.inf, -math.inf)] * initial
    last_direction = 0
    reactions: dict[float, float] = {}
    for t, demand in trace:
        ready = sum(1 for _, at in replicas if at <= t)
        total = len(replicas)
        s = result.summary
        s.violation_seconds += demand > ready
        s.unserved_core_seconds += max(0.0, demand - ready)
        s.used_core_seconds += min(demand, ready)
        s.replica_seconds += total
        for step in steps:
            if (
                step <= t
                and step not in reactions
                and any(decided >= step and at <= t for decided, at in replicas)
            ):
                reactions[step] = t - step
        cpu = min(100.0, 100.0 * demand / ready) if ready else None
        for wanted, reason in scaler.observe(t, cpu, ready, total, demand):
            before = len(replicas)
            if wanted > before:
                replicas += [(t, t + delay_at(t))] * (wanted - before)
            else:
                del replicas[wanted:]
            if wanted == before:
                continue
            direction = 1 if wanted > before else -1
            s.actions += 1
            s.reversals += last_direction not in (0, direction)
            last_direction = direction
            result.decisions.append({"t": t, "from": before, "to": wanted, "reason": reason})
    result.summary.reactions = [reactions.get(step) for step in steps]
    return result


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class EngineAutoscaler:
    """ebbflow's RuleEngine, with the simulated replicas as containers."""

    def __init__(self, labels: Mapping[str, str], defaults: RulesConfig | None = None) -> None:
        self.labels = MappingProxyType({**SERVICE, **labels})
        self.clock = VirtualClock()
        bus, defaults = Bus(), defaults or RulesConfig()
        self.catalog = ServiceCatalog(bus, defaults, ScopeConfig(), clock=self.clock)
        ctx = DecisionContext(bus, self.catalog, DecisionStore(":memory:"), self.clock)
        self.engine = RuleEngine(ctx, defaults)
        self.names: list[str] = []
        self.serial = 0

    def _start(self, t: float) -> None:
        self.serial += 1
        name = f"replay_svc_{self.serial}"
        self.names.append(name)
        info = ContainerInfo(id=name, name=name, image="replay", labels=self.labels, started_at=t)
        self._event(ContainerEvent(ContainerEventKind.START, info, t))

    def _stop_newest(self, t: float) -> None:
        name = self.names.pop()
        info = ContainerInfo(id=name, name=name, image="replay", running=False)
        self._event(ContainerEvent(ContainerEventKind.DESTROY, info, t))

    def _event(self, event: ContainerEvent) -> None:
        """As live: the catalog takes the event first, then the engine."""
        self.catalog.on_container(event)
        self.engine.on_container(event)

    def observe(
        self, t: float, cpu_percent: float | None, ready: int, total: int, demand: float
    ) -> list[tuple[int, str]]:
        self.clock.now = t
        while len(self.names) < total:  # the initial replicas
            self._start(t)
        if cpu_percent is None:
            return []
        samples = [
            Sample(CPU_METRIC, cpu_percent, labels_of({"name": name}), t)
            for name in self.names[:ready]
        ]  # ready replicas are the oldest ones
        made = []
        for decision in self.engine.on_samples(samples):
            while len(self.names) < decision.to_replicas:
                self._start(t)
            while len(self.names) > decision.to_replicas:
                self._stop_newest(t)
            self.engine.handle(ActionResult(decision, True, "simulated", t))
            made.append((decision.to_replicas, decision.reason))
        return made


def policy_of(labels: Mapping[str, str], defaults: RulesConfig | None = None) -> Policy:
    result = parse_policy({**SERVICE, **labels}, defaults)
    if result.policy is None:
        problems = "; ".join(result.errors) or "no scaling policy in the labels"
        raise ValueError(problems)
    return result.policy


def initial_count(policy: Policy) -> int:
    return policy.initial_replicas if policy.initial_replicas is not None else policy.min_replicas


def replay(
    trace: Sequence[tuple[float, float]],
    labels: Mapping[str, str],
    start_delay: StartDelay = 5.0,
    defaults: RulesConfig | None = None,
) -> ReplayResult:
    policy = policy_of(labels, defaults)
    return simulate(trace, EngineAutoscaler(labels, defaults), initial_count(policy), start_delay)
