"""ebbflow's own health as ordinary samples, so every output carries it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ebbflow.bus import Bus
from ebbflow.metrics import Desc
from ebbflow.model import Sample, SampleBatch
from ebbflow.names import TELEMETRY_SOURCE
from ebbflow.plugins import ReportsTelemetry

log = logging.getLogger("ebbflow.telemetry")

SOURCE = TELEMETRY_SOURCE


ERRORS = Desc(
    "ebbflow_telemetry_errors_total",
    "Rounds in which a component's own metrics could not be read.",
    "counter",
    ("component",),
)


class TelemetryInput:
    """Gathers every component's `telemetry` hook each interval into one batch.

    A hook that raises costs only its own samples of that round: it is counted, logged
    when it starts and stops failing, and asked again next round.
    """

    name = "telemetry"

    def __init__(
        self,
        bus: Bus,
        reporters: Sequence[ReportsTelemetry],
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self.bus = bus
        self.reporters = list(reporters)
        self.interval = interval
        self.clock = clock
        self.errors: dict[str, int] = {}
        self._failing: set[str] = set()

    def gather(self) -> list[Sample]:
        now = self.clock()
        samples: list[Sample] = []
        for reporter in self.reporters:
            name = str(getattr(reporter, "name", type(reporter).__name__))
            try:
                samples.extend(list(reporter.telemetry(now)))
            except Exception:
                self.errors[name] = self.errors.get(name, 0) + 1
                if name not in self._failing:
                    self._failing.add(name)
                    log.exception("telemetry of %s raised; its samples are missing", name)
                continue
            if name in self._failing:
                self._failing.discard(name)
                log.info("telemetry of %s works again", name)
        for name, count in self.errors.items():
            samples.append(ERRORS.sample(count, now, name))
        return samples

    def health_problem(self) -> str | None:
        if self._failing:
            return "metrics of " + ", ".join(sorted(self._failing)) + " cannot be read"
        return None

    async def run(self) -> None:
        while True:
            samples = self.gather()
            self.bus.publish(SampleBatch(SOURCE, self.clock(), tuple(samples)))
            await asyncio.sleep(self.interval)
