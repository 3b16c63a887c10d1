"""Strategies: how a metric becomes a recommended replica count. Each is a plugin found by
entry point (`ebbflow.strategies`), so a new one is a module plus one line in
pyproject.toml. Threshold rules (max/min) always go to `step`; target rules to the
policy's `mode`."""

from __future__ import annotations

import functools

from ebbflow.plugins import available
from ebbflow.policy import MetricRule, Policy

from .base import Recommendation, Signal, Strategy, replica_count, saturation_growth

__all__ = [
    "Recommendation",
    "Signal",
    "Strategy",
    "replica_count",
    "saturation_growth",
    "strategy_for",
]


@functools.cache
def _loaded(name: str) -> Strategy:
    found = available("strategies")
    strategy: Strategy = found[name].load()()
    return strategy


def strategy_for(rule: MetricRule, policy: Policy) -> Strategy:
    return _loaded("step" if not rule.proportional else policy.mode)
