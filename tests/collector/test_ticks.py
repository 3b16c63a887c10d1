"""A loop's runs stay on their grid: late wake-ups and slow runs never drift the rate."""

from __future__ import annotations

import itertools

import pytest

from ebbflow.collector.ticks import Ticks
from tests.conftest import VirtualClock


class Sleeps:
    """asyncio.sleep on a virtual clock, each wake-up `late` seconds after it was due."""

    def __init__(self, clock: VirtualClock, late: float = 0.0) -> None:
        self.clock = clock
        self.late = late

    async def __call__(self, seconds: float) -> None:
        self.clock.advance(seconds + self.late)


async def runs(ticks: Ticks, clock: VirtualClock, count: int, work: float = 0.0) -> list[float]:
    times = []
    for _ in range(count):
        await ticks.wait()
        times.append(clock())
        clock.advance(work)
    return times


async def test_late_wake_ups_delay_their_run_and_never_the_rate(clock: VirtualClock) -> None:
    start = clock()
    # every wake-up 0.15 s late, every run 0.2 s long: "sleep the interval less the run"
    # would run every 1.15 s; the grid keeps 1 s
    ticks = Ticks(1.0, 0.5, clock=clock, sleep=Sleeps(clock, late=0.15))
    times = await runs(ticks, clock, 100, work=0.2)
    assert times[0] == pytest.approx(start + 0.65)
    assert times[-1] == pytest.approx(start + 0.65 + 99)
    assert [round(b - a, 9) for a, b in itertools.pairwise(times)] == [1.0] * 99


async def test_a_run_longer_than_its_interval_is_followed_by_one_late_run_not_a_burst(
    clock: VirtualClock,
) -> None:
    start = clock()
    ticks = Ticks(1.0, clock=clock, sleep=Sleeps(clock))
    await ticks.wait()
    clock.advance(3.4)  # the run took 3.4 intervals: the ticks at 1, 2 and 3 were missed
    await ticks.wait()
    assert clock() == pytest.approx(start + 3.4)  # one late run, at once
    await ticks.wait()
    assert clock() == pytest.approx(start + 4.0)  # then back on the grid


async def test_jitter_spreads_each_run_and_keeps_the_mean_interval(clock: VirtualClock) -> None:
    ticks = Ticks(1.0, jitter=0.1, clock=clock, sleep=Sleeps(clock))
    times = await runs(ticks, clock, 1001)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.9 <= gap <= 1.1 for gap in gaps)
    assert len(set(gaps)) > 900
    assert (times[-1] - times[0]) / 1000 == pytest.approx(1.0, abs=0.01)


def test_an_interval_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="interval must be positive, not 0"):
        Ticks(0, clock=lambda: 0.0)
