"""A time window of one series' recent values."""

from __future__ import annotations

import collections


class TimeWindow:
    """Keeps (time, value) pairs no older than `span` seconds behind the newest."""

    def __init__(self, span: float) -> None:
        self.span = span
        self._points: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, t: float, value: float) -> None:
        self._points.append((t, value))
        while self._points and self._points[0][0] < t - self.span:
            self._points.popleft()

    def mean(self, since: float) -> float | None:
        values = [v for t, v in self._points if t >= since]
        return sum(values) / len(values) if values else None

    def __len__(self) -> int:
        return len(self._points)
