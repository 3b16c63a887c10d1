"""HPA's rule, desired = ⌈replicas × value / target⌉, and what it lacks for bursty load:
growth while saturated, a scale-in that keeps the recent peak, headroom for noise."""

from __future__ import annotations

import math

from ebbflow.policy import PERCENT_METRICS, MetricRule

from .base import Recommendation, Signal, replica_count, saturation_growth

PEAK_MEMORY = 180.0  # seconds of load peaks a scale-in keeps capacity for
PEAK_MEMORY_STARTUPS = 3.0  # ... or this many start-ups, when that is longer


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


class Proportional:
    name = "proportional"

    def forecast(
        self, signal: Signal, replicas: int, why: str, implied: float
    ) -> tuple[int, str, float, float | None]:
        """(replicas, why, load, noise): the load the recommendation is made for. Here the
        window's; the predictive strategy reads it one start-up ahead."""
        return replicas, why, implied, signal.implied.spread(signal.since)

    def recommend(self, signal: Signal) -> Recommendation:
        rule, policy, ready = signal.rule, signal.policy, signal.ready
        value = signal.values.aggregate(signal.since, rule.aggregation)
        implied = signal.implied.aggregate(signal.since, rule.aggregation)
        assert value is not None and implied is not None and rule.target is not None
        replicas, why = recommend_proportional(
            rule, value, implied, signal.current, ready, policy.tolerance
        )
        replicas, why, load, noise = self.forecast(signal, replicas, why, implied)
        growth = saturation_growth(signal.horizon)
        boosted = math.ceil(growth * ready - 1e-9)
        if signal.saturated and boosted > replicas:
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
            memory = max(PEAK_MEMORY, PEAK_MEMORY_STARTUPS * signal.horizon)
            peak = signal.implied.aggregate(signal.now - memory, "max")
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
