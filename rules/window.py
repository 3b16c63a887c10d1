"""Per-series time windows in numpy ring buffers: O(1) appends, vectorised queries."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

Aggregation = Literal["avg", "max", "min", "p95"]


class Line(NamedTuple):
    """A least-squares line through a window's points, read at one instant."""

    level: float  # the line's value at the instant asked for
    slope: float  # per second
    slope_error: float  # the slope's standard error: a trend is a slope well above it
    noise: float  # standard deviation of the points around the line

    def rising(self, z: float) -> bool:
        return self.slope > z * self.slope_error


class RingWindow:
    """The newest `capacity` (time, value) points of one series.

    When full, the oldest point is overwritten; queries take the points newer than a
    given time, so the window's span is set by the caller, not by the capacity. Times
    never go back (a point older than the newest is taken at the newest's time: a clock
    stepped back moves nothing), so a query is a binary search.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._t: npt.NDArray[np.float64] = np.empty(capacity)
        self._v: npt.NDArray[np.float64] = np.empty(capacity)
        self._next = 0
        self._count = 0
        self._newest = -np.inf

    def add(self, t: float, value: float) -> None:
        self._newest = t = max(t, self._newest)
        self._t[self._next] = t
        self._v[self._next] = value
        self._next = (self._next + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def __len__(self) -> int:
        return self._count

    def since(self, t0: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(times, values) of the points at or after t0, oldest first."""
        if self._count < self.capacity:
            times, values = self._t[: self._count], self._v[: self._count]
        else:
            split = self._next
            times = np.concatenate((self._t[split:], self._t[:split]))
            values = np.concatenate((self._v[split:], self._v[:split]))
        first = int(np.searchsorted(times, t0, side="left"))  # points come in time order
        return times[first:], values[first:]

    def aggregate(self, t0: float, how: Aggregation) -> float | None:
        _, values = self.since(t0)
        if values.size == 0:
            return None
        if how == "max":
            return float(values.max())
        if how == "min":
            return float(values.min())
        if how == "p95":
            return float(np.percentile(values, 95))
        return float(values.mean())

    def spread(self, t0: float) -> float | None:
        """Standard deviation of the points since t0; None under 3."""
        _, values = self.since(t0)
        return float(values.std()) if values.size >= 3 else None

    def fit(self, t0: float, at: float) -> Line | None:
        """The line through the points since t0, read at `at`. Reading the line, not the
        newest point, keeps one noisy point from passing for a level or a trend; the
        slope's error says whether a trend is there at all. None under 4 points, or when
        they cover less than half the span asked for."""
        times, values = self.since(t0)
        if values.size < 4 or float(np.ptp(times)) < max(at - t0, 1e-9) / 2:
            return None
        t_mean, v_mean = times.mean(), values.mean()
        centred = times - t_mean
        spread = float((centred**2).sum())
        slope = float((centred * (values - v_mean)).sum() / spread)
        residuals = values - v_mean - slope * centred
        variance = float((residuals**2).sum()) / (values.size - 2)
        return Line(
            float(v_mean + slope * (at - t_mean)),
            slope,
            (variance / spread) ** 0.5,
            variance**0.5,
        )
