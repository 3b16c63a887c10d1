"""The autoscalers people use, as references for ebbflow's decisions under the replay
model (replay.py), and the goals ebbflow's decisions are held to against them.

Each reference follows its project's documented defaults, cited in its module: Kubernetes'
HPA (hpa.py), Knative's KPA (kpa.py), Nomad Autoscaler's target-value strategy (nomad.py)
and AWS target tracking (aws.py). All four scale on a CPU target; a policy without one has
no reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ebbflow.config import RulesConfig
from ebbflow.policy import CPU_METRIC

from .aws import AWSTargetTracking
from .hpa import HPA
from .kpa import KPA
from .nomad import NomadTargetValue
from .replay import (
    Autoscaler,
    ReplayResult,
    StartDelay,
    Summary,
    initial_count,
    policy_of,
    simulate,
)

# name → the autoscaler at its defaults, given (target %, min replicas, max replicas)
REFERENCES: dict[str, Callable[[float, int, int], Autoscaler]] = {
    "hpa": lambda target, low, high: HPA(target=target, min_replicas=low, max_replicas=high),
    "kpa": lambda target, low, high: KPA(target=target, min_replicas=low, max_replicas=high),
    "nomad": lambda target, low, high: NomadTargetValue(target, low, high),
    "aws": lambda target, low, high: AWSTargetTracking(target, low, high),
}
ABOUT = {
    "hpa": "Kubernetes HPA: 15 s sync, tolerance 0.1, 300 s scale-down stabilisation",
    "kpa": "Knative KPA: 2 s tick, 60 s stable and 6 s panic windows, panic at 200 %",
    "nomad": "Nomad target-value: 10 s evaluation, 1 min query window, 5 min cooldown",
    "aws": "AWS target tracking: 1 min datapoints, out after 3 above target, in after 15 "
    "below 90 % of it, 300 s scale-in cooldown",
}


@dataclass(frozen=True)
class References:
    runs: dict[str, ReplayResult]  # name → its run, in REFERENCES' order
    about: str  # what they were run with, or why there are none

    def summaries(self) -> dict[str, Summary]:
        return {name: run.summary for name, run in self.runs.items()}


def run_references(
    trace: Sequence[tuple[float, float]],
    labels: Mapping[str, str],
    start_delay: StartDelay = 5.0,
    defaults: RulesConfig | None = None,
    steps: Sequence[float] = (),
) -> References:
    """What each reference would have done with the policy's CPU target, bounds and start,
    under the same model; none, with why, when the policy has no CPU target."""
    policy = policy_of(labels, defaults)
    target = next((r.target for r in policy.rules if r.metric == CPU_METRIC and r.target), None)
    if target is None:
        return References({}, "no references: the policy has no CPU target (they scale on one)")
    low, high, initial = policy.min_replicas, policy.max_replicas, initial_count(policy)
    runs = {
        name: simulate(trace, make(target, low, high), initial, start_delay, steps)
        for name, make in REFERENCES.items()
    }
    about = f"references at target {target:g}% CPU, replicas {low}..{high}: " + "; ".join(
        ABOUT.values()
    )
    return References(runs, about)


VIOLATIONS_KEPT = 0.7  # of HPA's violation seconds, at most
REVERSAL_PERIOD = 600  # seconds: one reversal per period is allowed, or the fewest's count
GOALS = (
    "fewer violation seconds than each reference and no more replica seconds; at most "
    f"{VIOLATIONS_KEPT:g}× HPA's violation seconds; no more reversals than the fewest of "
    f"the references or 1 per {REVERSAL_PERIOD // 60} minutes"
)


@dataclass(frozen=True)
class Miss:
    """One goal missed: against a reference (its name), or the reversals (reference "")."""

    reference: str
    goal: str  # "violations" (not fewer), "replicas" (more), "hpa_share", "reversals"
    text: str

    @property
    def code(self) -> str:
        return f"{self.reference}:{self.goal}" if self.reference else self.goal


def misses(ebbflow: Summary, references: Mapping[str, Summary], duration: float) -> list[Miss]:
    """What ebbflow's run missed of GOALS against the references' runs on the same trace
    and start delay. Fewer than 0 violation seconds cannot be had: 0 against 0 is met."""
    found = []
    violations, replicas = ebbflow.violation_seconds, ebbflow.replica_seconds
    for name, ref in references.items():
        if violations >= ref.violation_seconds and violations:
            text = f"violation seconds {violations} ≥ {name}'s {ref.violation_seconds}"
            found.append(Miss(name, "violations", text))
        if replicas > ref.replica_seconds:
            text = f"replica seconds {replicas} > {name}'s {ref.replica_seconds}"
            found.append(Miss(name, "replicas", text))
    hpa = references.get("hpa")
    if hpa is not None and violations > VIOLATIONS_KEPT * hpa.violation_seconds:
        text = (
            f"violation seconds {violations} > {VIOLATIONS_KEPT:g}× HPA's {hpa.violation_seconds}"
        )
        found.append(Miss("hpa", "hpa_share", text))
    allowed = reversals_allowed(references, duration)
    if ebbflow.reversals > allowed:
        found.append(Miss("", "reversals", f"reversals {ebbflow.reversals} > {allowed}"))
    return found


def goals_missed(ebbflow: Summary, references: Mapping[str, Summary], duration: float) -> list[str]:
    """`misses`, as text."""
    return [miss.text for miss in misses(ebbflow, references, duration)]


def reversals_allowed(references: Mapping[str, Summary], duration: float) -> int:
    fewest = min((ref.reversals for ref in references.values()), default=0)
    return max(fewest, int(duration // REVERSAL_PERIOD))
