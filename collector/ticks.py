"""When a loop's next run is due: a fixed grid of times, as Prometheus scrapes on.

A loop that sleeps "the interval less what the run took" drifts: every late wake-up (a
busy event loop, two busy cores) is added to every run after it, and on a loaded machine
a 1 s target is scraped every 1.1 s. On a grid a late wake-up delays that one run only.
A run longer than an interval does not make a burst of the runs it missed: at most one
late run, then back on the grid (as Go's `time.Ticker`, which Prometheus uses, does).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable


class Ticks:
    """`await ticks.wait()` returns at `offset`, then once an interval (each ± `jitter`)."""

    def __init__(
        self,
        interval: float,
        offset: float = 0.0,
        jitter: float = 0.0,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.interval = interval
        self.jitter = jitter
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep
        self._due = self._clock() + max(0.0, offset)

    async def wait(self) -> None:
        now = self._clock()
        behind = now - self._due
        if behind >= self.interval:  # whole intervals missed: skipped, one late run kept
            self._due += math.floor(behind / self.interval) * self.interval
        await self._sleep(max(0.0, self._due - now))
        step = random.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        self._due += self.interval * (1 + step)
