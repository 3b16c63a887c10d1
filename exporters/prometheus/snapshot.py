"""The latest batch of every source, exposed to prometheus-client as a custom collector.

A full batch replaces its source's series whole, so a series whose container is gone
disappears at the next cycle instead of lingering with a stale value; a partial batch
(from a push input) updates only the series it carries.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ebbflow.model import Labels, Sample, SampleBatch


class Snapshot(Collector):
    def __init__(self) -> None:
        # source → series key → latest sample
        self._series: dict[str, dict[tuple[str, Labels], Sample]] = {}

    def update(self, batch: SampleBatch) -> None:
        fresh = {(s.name, s.labels): s for s in batch.samples}
        if batch.replace or batch.source not in self._series:
            self._series[batch.source] = fresh
        else:
            self._series[batch.source].update(fresh)

    def series_count(self) -> int:
        return sum(len(series) for series in self._series.values())

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for series in list(self._series.values()):
            for sample in list(series.values()):
                family = families.get(sample.name)
                if family is None:
                    base = (
                        sample.name.removesuffix("_total")
                        if sample.kind == "counter"
                        else sample.name
                    )
                    family = families[sample.name] = Metric(base, sample.help, sample.kind)
                family.add_sample(sample.name, dict(sample.labels), sample.value)
        yield from families.values()
