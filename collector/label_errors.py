"""Per-container label errors of one label-driven input (probes, scrapes).

A container whose labels are wrong has that one feature disabled: the errors are logged
when they change (not on every cycle) and exported as a gauge per container.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ebbflow.metrics import Desc
from ebbflow.model import Sample


class LabelErrors:
    def __init__(self, feature: str, metric: str, log: logging.Logger) -> None:
        self.feature = feature
        self.metric = metric
        self.desc = Desc(
            metric,
            f"Errors in a container's {feature} labels ({feature} disabled).",
            "gauge",
            ("name",),
        )
        self.log = log
        self.by_container: dict[str, tuple[str, ...]] = {}

    def record(self, container: str, errors: tuple[str, ...]) -> None:
        if not errors:
            self.by_container.pop(container, None)
            return
        if self.by_container.get(container) != errors:
            self.log.warning(
                "container %s: %s disabled: %s", container, self.feature, "; ".join(errors)
            )
        self.by_container[container] = errors

    def keep_only(self, containers: Iterable[str]) -> None:
        """Forget containers that are gone."""
        live = set(containers)
        self.by_container = {k: v for k, v in self.by_container.items() if k in live}

    def __getitem__(self, container: str) -> tuple[str, ...]:
        return self.by_container[container]

    def telemetry(self, now: float) -> Iterable[Sample]:
        for container, errors in self.by_container.items():
            yield self.desc.sample(len(errors), now, container)
