"""The latest batch of every source, for the `/metrics` endpoint.

A full batch replaces its source's series whole, so a series whose container is gone
disappears at the next cycle instead of lingering with a stale value; a partial batch
(from a push input) updates only the series it carries.
"""

from __future__ import annotations

from collections.abc import Iterator

from ebbflow.model import Labels, Sample, SampleBatch

SeriesKey = tuple[str, Labels]


class Snapshot:
    def __init__(self) -> None:
        self._series: dict[str, dict[SeriesKey, Sample]] = {}  # source → series → latest

    def update(self, batch: SampleBatch) -> None:
        fresh = {(s.name, s.labels): s for s in batch.samples}
        if batch.replace or batch.source not in self._series:
            self._series[batch.source] = fresh
        else:
            self._series[batch.source].update(fresh)

    def series_count(self) -> int:
        return sum(len(series) for series in self._series.values())

    def sources(self) -> Iterator[dict[SeriesKey, Sample]]:
        yield from list(self._series.values())
