"""The latest batch of every source, exposed to prometheus-client as a custom collector.

Each source's batch replaces its previous one whole, so a series whose container is gone
disappears at the next cycle instead of lingering with a stale value.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ebbflow.model import Sample, SampleBatch


class Snapshot(Collector):
    def __init__(self) -> None:
        self._batches: dict[str, tuple[Sample, ...]] = {}

    def update(self, batch: SampleBatch) -> None:
        self._batches[batch.source] = batch.samples

    def series_count(self) -> int:
        return sum(len(samples) for samples in self._batches.values())

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for samples in list(self._batches.values()):
            for sample in samples:
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
