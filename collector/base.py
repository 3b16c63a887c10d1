"""The coordinator every polling input builds on.

It owns the interval (with jitter), the timeout and the failure state, so an input only
writes `fetch`. It logs when an input becomes unavailable and when it recovers, not on
every failure, and reports its health as metrics.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable

from ebbflow.bus import Bus
from ebbflow.metrics import Desc
from ebbflow.model import Sample, SampleBatch

from .ticks import Ticks

log = logging.getLogger("ebbflow.collector")


INPUT_UP = Desc(
    "ebbflow_input_up", "1 while the input runs and its last cycle succeeded.", "gauge", ("input",)
)
CYCLES = Desc("ebbflow_input_cycles_total", "Successful cycles of an input.", "counter", ("input",))
FAILURES = Desc(
    "ebbflow_input_failures_total", "Failed or timed-out cycles of an input.", "counter", ("input",)
)
DURATION = Desc(
    "ebbflow_input_cycle_duration_seconds",
    "Duration of an input's last cycle.",
    "gauge",
    ("input",),
)


class PollingInput(abc.ABC):
    name: str

    def __init__(
        self,
        bus: Bus,
        interval: float,
        timeout: float,
        clock: Callable[[], float] = time.time,
        jitter: float = 0.1,
    ) -> None:
        self.bus = bus
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self.jitter = jitter
        self.available = True
        self.failures = 0
        self.cycles = 0
        self.last_error = ""
        self.last_duration = 0.0
        self.running = False

    @property
    def up(self) -> bool:
        """Running, and its last cycle worked: what `ebbflow_input_up` says."""
        return self.running and self.available

    def health_problem(self) -> str | None:
        if not self.running:
            return None  # the supervisor says why
        return None if self.available else f"unavailable: {self.last_error}"

    @abc.abstractmethod
    async def fetch(self) -> list[Sample]:
        """One cycle's samples. Raise on failure; the base class keeps the state."""

    async def prepare(self) -> None:
        """Called once before the first cycle (e.g. to take a baseline for rates)."""

    async def cycle(self) -> list[Sample] | None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                samples = await self.fetch()
        except Exception as err:
            self.failures += 1
            self.last_error = (
                f"timed out after {self.timeout}s"
                if isinstance(err, TimeoutError)
                else f"{type(err).__name__}: {err}"
            )
            if self.available:
                log.warning("input %s is unavailable: %s", self.name, self.last_error)
                self.available = False
            return None
        finally:
            self.last_duration = time.perf_counter() - started
        self.cycles += 1
        if not self.available:
            log.info("input %s recovered", self.name)
            self.available = True
        return samples

    def publish(self, samples: list[Sample]) -> None:
        """A cycle's samples, as one full batch: they replace the input's last ones."""
        self.bus.publish(SampleBatch(self.name, self.clock(), tuple(samples)))

    async def collect_once(self) -> list[Sample]:
        await self.prepare()
        samples = await self.cycle()
        if samples is None:
            raise RuntimeError(f"input {self.name}: {self.last_error}")
        return samples

    async def run(self) -> None:
        self.running = True
        try:
            await self._poll()
        finally:
            self.running = False

    async def _poll(self) -> None:
        await self.prepare()
        ticks = Ticks(self.interval, self.interval * random.uniform(0, self.jitter), self.jitter)
        while True:
            await ticks.wait()
            samples = await self.cycle()
            if samples is not None:
                self.publish(samples)

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield INPUT_UP.sample(1.0 if self.up else 0.0, now, self.name)
        yield CYCLES.sample(self.cycles, now, self.name)
        yield FAILURES.sample(self.failures, now, self.name)
        yield DURATION.sample(self.last_duration, now, self.name)
