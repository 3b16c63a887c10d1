"""Proportional, read one start-up ahead: capacity ordered now serves one start-up from
now, so the load is read on a line through at least two start-ups of points."""

from __future__ import annotations

import math

from ..window import Line
from .base import Signal, replica_count
from .proportional import Proportional

# A rise is a trend when its slope is this many standard errors above 0: 3, not 2, since
# the test is repeated on every evaluation and noise must almost never pass it.
TREND_Z = 3.0
TREND_STARTUPS = 2.0  # the trend's line runs through this many start-ups of points
MIN_TREND_SPAN = 60.0  # ... and at least this many seconds of them


def trend_line(signal: Signal) -> Line | None:
    """The line through the window, or None after saturation: saturated points only bound
    the load from below."""
    span = max(signal.policy.window, TREND_STARTUPS * signal.horizon, MIN_TREND_SPAN)
    if signal.now - (signal.saturated_at if signal.saturated_at is not None else -math.inf) <= span:
        return None
    return signal.implied.fit(signal.now - span, signal.now)


class Predictive(Proportional):
    name = "predictive"

    def forecast(
        self, signal: Signal, replicas: int, why: str, implied: float
    ) -> tuple[int, str, float, float | None]:
        line = trend_line(signal)
        if line is None:
            return super().forecast(signal, replicas, why, implied)
        rule, ready, horizon = signal.rule, signal.ready, signal.horizon
        assert rule.target is not None
        rise = line.slope * horizon if line.rising(TREND_Z) else 0.0
        load = max(line.level + rise, 0.0)
        if load > replicas and load / max(ready, 1) > 1 + signal.policy.tolerance:
            replicas = replica_count(load, replicas)
            why = (
                f"{rule.label} trend +{line.slope * 60:.3g} replicas/min, forecast "
                f"{load:.1f} replicas in {horizon:.0f}s at target {rule.show(rule.target)}"
                if rise
                else f"{rule.label} level {rule.show(load * rule.target / max(ready, 1))}"
                f" > target {rule.show(rule.target)}"
            )
        return replicas, why, load, line.noise
