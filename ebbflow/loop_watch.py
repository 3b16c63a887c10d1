"""Whether the process ran when it meant to, and whether the wall clock kept pace.

A tick every half second measures two things:
- the event loop's lag: how much later than asked the tick ran (monotonic time). A long one
  is a stall: a blocking call on the loop, or the process not scheduled;
- the wall clock's jump: how far wall time moved beside monotonic time. A jump is the
  clock stepped (NTP, by hand) or the machine suspended (a paused VM), since monotonic
  time does not count a suspend.

Leases, cooldowns and the state file's times are wall time, so either can explain an
instance that lost its lease without an error. Each is logged when it happens and
counted, under names that tell them apart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from ebbflow.metrics import Desc
from ebbflow.model import Sample

log = logging.getLogger("ebbflow.loop")

TICK = 0.5  # seconds between looks
STALL = 1.0  # seconds of lag that are a stall, logged and counted
JUMP = 1.0  # seconds the wall clock may move beside monotonic time before it is a jump

LAG = Desc(
    "ebbflow_event_loop_lag_seconds",
    "How much later than asked the event loop ran a timer, at the last look.",
)
LAG_MAX = Desc(
    "ebbflow_event_loop_lag_max_seconds",
    "The largest event loop lag since the previous report.",
)
STALLS = Desc(
    "ebbflow_event_loop_stalls_total",
    f"Times the event loop ran a timer more than {STALL:g} s late.",
    "counter",
)
JUMPS = Desc(
    "ebbflow_wall_clock_jumps_total",
    f"Times the wall clock moved more than {JUMP:g} s beside monotonic time (a clock step "
    "or a suspended machine).",
    "counter",
)


class LoopWatch:
    name = "loop"

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.monotonic, self.wall = monotonic, wall
        self.lag = self.lag_max = 0.0
        self.stalls = self.jumps = 0

    def note(self, asked: float, slept: float, wall_moved: float) -> None:
        """One tick: `asked` seconds of sleep took `slept` of monotonic time while wall
        time moved `wall_moved`."""
        self.lag = max(0.0, slept - asked)
        self.lag_max = max(self.lag_max, self.lag)
        if self.lag > STALL:
            self.stalls += 1
            log.warning("the event loop stalled: a timer ran %.1f s late", self.lag)
        jump = wall_moved - slept
        if abs(jump) > JUMP:
            self.jumps += 1
            log.warning(
                "the wall clock jumped %+.1f s beside monotonic time (stepped, or the "
                "machine was suspended); leases and cooldowns count wall time",
                jump,
            )

    async def run(self) -> None:
        while True:
            started, wall = self.monotonic(), self.wall()
            await asyncio.sleep(TICK)
            self.note(TICK, self.monotonic() - started, self.wall() - wall)

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield LAG.sample(self.lag, now)
        yield LAG_MAX.sample(self.lag_max, now)
        self.lag_max = self.lag
        yield STALLS.sample(self.stalls, now)
        yield JUMPS.sample(self.jumps, now)
