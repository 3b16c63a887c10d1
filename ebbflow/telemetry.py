"""ebbflow's own health as ordinary samples, so every output carries it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ebbflow.bus import Bus
from ebbflow.model import Sample, SampleBatch
from ebbflow.plugins import ReportsTelemetry

log = logging.getLogger("ebbflow.telemetry")

SOURCE = "ebbflow"


class TelemetryInput:
    """Gathers every component's `telemetry` hook each interval into one batch.

    A hook that raises is cut off with one log line; the rest keep reporting.
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

    def gather(self) -> list[Sample]:
        now = self.clock()
        samples: list[Sample] = []
        for reporter in list(self.reporters):
            try:
                samples.extend(reporter.telemetry(now))
            except Exception:
                log.exception("telemetry hook of %r raised; it is cut off", reporter)
                self.reporters.remove(reporter)
        return samples

    async def run(self) -> None:
        while True:
            samples = self.gather()
            self.bus.publish(SampleBatch(SOURCE, self.clock(), tuple(samples)))
            await asyncio.sleep(self.interval)
