"""ebbflow's own metrics, each declared once: name, HELP, type and label names.

As node_exporter's `typedDesc`: a part declares its metrics at the top of its module and
builds samples from the declaration, so a name, its HELP and its type are written in one
place and a sample can never carry another label set than the one declared.

    RESTARTS = Desc("ebbflow_component_restarts_total", "Restarts ...", "counter",
                    ("component",))
    yield RESTARTS.sample(status.restarts, now, name)
"""

from __future__ import annotations

from dataclasses import dataclass

from ebbflow.model import Labels, MetricKind, Sample


@dataclass(frozen=True, slots=True)
class Desc:
    name: str
    help: str
    kind: MetricKind = "gauge"
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if list(self.labels) != sorted(set(self.labels)):
            # Samples carry sorted label pairs; declaring them sorted keeps that free.
            raise ValueError(f"{self.name}: declare label names sorted and once each")

    def sample(self, value: float, now: float, *values: str) -> Sample:
        """One sample; label values in the declared (sorted) order of `labels`."""
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(values)} label values for labels {self.labels}")
        # lengths checked above, so not `strict` (it was a tenth of a telemetry round)
        pairs: Labels = tuple(zip(self.labels, values, strict=False)) if values else ()
        return Sample(self.name, float(value), pairs, now, self.kind, self.help)

    def labelled(self, value: float, now: float, pairs: Labels) -> Sample:
        """One sample with label pairs built elsewhere (sorted), e.g. a container's."""
        return Sample(self.name, float(value), pairs, now, self.kind, self.help)
