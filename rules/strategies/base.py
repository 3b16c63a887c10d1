"""The strategy contract, as Nomad Autoscaler's: a strategy reads one metric of one service
and recommends a replica count with its reason. It only recommends: the gate
(`rules/gate.py`) owns cooldowns, bounds, limits, stabilisation and whether to act.

A new strategy is one module with a class that has `recommend`, plus one line under
`[project.entry-points."ebbflow.strategies"]` in pyproject.toml; its name is then a valid
`ebbflow.scale.mode`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ebbflow.policy import MetricRule, Policy

from ..window import RingWindow

MAX_IMPLIED = 1e9  # replicas a window point may imply: far past any max_replicas, still exact
SATURATION_GROWTH = 1.5  # per round while saturated, at short start-ups
MAX_SATURATION_GROWTH = 3.0  # per round while saturated, at start-ups of 45 s and more


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


@dataclass(frozen=True)
class Signal:
    """What a strategy reads: one metric rule of one service, at one instant."""

    rule: MetricRule
    policy: Policy
    values: RingWindow  # the metric's value across ready replicas, per evaluation
    implied: RingWindow  # the replica count each value implies at the target
    current: int  # running replicas
    ready: int  # replicas whose samples count (started, warmed up, probed)
    now: float
    horizon: float  # seconds until capacity ordered now serves: the learned start-up
    saturated_at: float | None  # the last point a CPU window was near 100 % (demand hidden)

    @property
    def since(self) -> float:
        return self.now - self.policy.window

    @property
    def saturated(self) -> bool:
        """Saturated at this very point."""
        return self.saturated_at == self.now


@dataclass(frozen=True)
class Recommendation:
    rule: MetricRule
    replicas: int
    why: str
    value: float | None
    keep: int = 0  # replicas a scale-in must keep (the recent peak's)


class Strategy(Protocol):
    name: str

    def recommend(self, signal: Signal) -> Recommendation: ...
