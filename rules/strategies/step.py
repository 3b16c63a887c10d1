"""Thresholds: one step out above `max`, one step in below `min` (the seed dialect's)."""

from __future__ import annotations

from ebbflow.policy import MetricRule

from .base import Recommendation, Signal


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


class Step:
    name = "step"

    def recommend(self, signal: Signal) -> Recommendation:
        rule = signal.rule
        value = signal.values.aggregate(signal.since, rule.aggregation)
        assert value is not None, "evaluated only with points in the window"
        replicas, why = recommend_step(rule, value, signal.current, signal.policy.step)
        return Recommendation(rule, replicas, why, value)
