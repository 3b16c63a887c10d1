"""The newest sample of each pushed series, kept for `/metrics` until it expires: what a
receiving input (remote write, Kafka) holds. Bounded: past `max_series`, new series are
dropped and counted."""

from __future__ import annotations

import re
from collections.abc import Callable

from ebbflow.model import Labels, Sample

SeriesKey = tuple[str, Labels]


class HeldSeries:
    def __init__(self, max_series: int, expire_after: float, clock: Callable[[], float]) -> None:
        self.max_series = max_series
        self.expire_after = expire_after
        self.clock = clock
        self.series: dict[SeriesKey, Sample] = {}
        self.seen: dict[SeriesKey, float] = {}
        self.dropped = 0

    def keep(self, sample: Sample, now: float) -> bool:
        """Held (True), or dropped for a new series past the bound (False)."""
        key = (sample.name, sample.labels)
        if key not in self.series and len(self.series) >= self.max_series:
            self.dropped += 1
            return False
        self.series[key], self.seen[key] = sample, now
        return True

    def expire(self) -> bool:
        """Series unheard for `expire_after` let go; True when any was."""
        cutoff = self.clock() - self.expire_after
        gone = [key for key, when in self.seen.items() if when < cutoff]
        for key in gone:
            del self.series[key], self.seen[key]
        return bool(gone)

    def samples(self) -> list[Sample]:
        return list(self.series.values())

    def __len__(self) -> int:
        return len(self.series)


class Senders:
    """When each pushing agent was last heard, by the name it gives itself. The name is
    input from outside: checked, bounded in length and in count (past `limit`, new names
    count as `other`)."""

    NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self.last: dict[str, float] = {}

    def heard(self, sender: str, now: float) -> None:
        name = sender if self.NAME.match(sender) else ("unnamed" if not sender else "invalid")
        if name not in self.last and len(self.last) >= self.limit:
            name = "other"
        self.last[name] = now
