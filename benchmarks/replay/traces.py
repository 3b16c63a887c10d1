"""The demand traces of the HPA comparison, generated with fixed seeds (1 s steps).

Each family shows one thing an autoscaler gets wrong: smooth daily load (diurnal, noisy
diurnal), sudden steps (flash crowd, square wave, step), short spikes on a noisy base, and
spikes that recur at a fixed period (recurring spikes at 90 s, 3 and 6 minutes), ramps
slow, fast and noisy, start-up times that change under it (startup shift) or that are
minutes long (slow startup, replayed at start-ups of 2-10 minutes: the case that drove
Netflix's predictive Scryer), and an outage followed by its clients' retry storm.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

HOUR = 3600
Trace = list[tuple[int, float]]


def _trace(shape: Callable[[int], float], noise: float, seed: int, duration: int = HOUR) -> Trace:
    rng = random.Random(seed)
    return [(t, round(max(0.0, shape(t) + rng.gauss(0, noise)), 3)) for t in range(duration)]


def diurnal() -> Trace:
    """A day compressed into an hour: 1 → 11 cores and back, smoothly."""
    return _trace(lambda t: 6 - 5 * math.cos(2 * math.pi * t / HOUR), 0.3, 1)


def flash_crowd() -> Trace:
    """2 cores, then 14 at once for 10 minutes, then 2 again."""
    return _trace(lambda t: 14.0 if 900 <= t < 1500 else 2.0, 0.2, 2)


def square_wave() -> Trace:
    """3 and 10 cores in turn, 10 minutes each."""
    return _trace(lambda t: 10.0 if (t // 600) % 2 else 3.0, 0.2, 3)


def noisy_ramp() -> Trace:
    """1 → 16 cores over 50 minutes, with heavy noise, then level."""
    return _trace(lambda t: 1 + 15 * min(1.0, t / 3000), 0.8, 4)


def noisy_diurnal() -> Trace:
    """Two hours of 2 → 12 → 2 cores with noise of σ 1 core: the noise, not the day,
    moves the count of a naive scaler."""
    return _trace(lambda t: 7 - 5 * math.cos(2 * math.pi * t / (2 * HOUR)), 1.0, 5, 2 * HOUR)


def spikes() -> Trace:
    """5 cores (σ 0.8) with a spike of +3..+8 cores lasting 10..40 s every 2..6 minutes."""
    rng = random.Random(6)
    bursts: list[tuple[int, int, float]] = []
    t = rng.randint(120, 360)
    while t < HOUR:
        bursts.append((t, t + rng.randint(10, 40), rng.uniform(3, 8)))
        t += rng.randint(120, 360)

    def shape(t: int) -> float:
        return 5.0 + sum(h for start, end, h in bursts if start <= t < end)

    return _trace(shape, 0.8, 7)


def slow_ramp() -> Trace:
    """2 → 12 cores over the hour (σ 0.4): a trend slower than the noise is loud."""
    return _trace(lambda t: 2 + 10 * t / HOUR, 0.4, 8)


def fast_ramp() -> Trace:
    """2 cores, up to 16 within 2 minutes at t = 600 s, 20 minutes there, down as fast."""

    def shape(t: int) -> float:
        up = min(1.0, max(0.0, (t - 600) / 120))
        down = min(1.0, max(0.0, (t - 1920) / 120))
        return 2 + 14 * (up - down)

    return _trace(shape, 0.3, 9)


def startup_shift() -> Trace:
    """Bursts of 3 → 9 cores, each 10 minutes ramping up and 10 down, while start-up times
    triple between t = 1200 s and 2400 s (a cold image cache): see STARTUP_FACTORS."""
    return _trace(lambda t: 6 - 3 * math.cos(2 * math.pi * t / 1200), 0.3, 10)


def recurring_spikes(period: int, seed: int) -> Callable[[], Trace]:
    def trace() -> Trace:
        """4 cores (σ 0.3) with a spike of +6 cores for 20 s every `period` seconds
        (±5 s): a batch job, a cron, a client that polls in step."""
        rng = random.Random(seed)
        starts = [t + rng.randint(-5, 5) for t in range(period, HOUR, period)]

        def shape(t: int) -> float:
            return 4.0 + sum(6.0 for start in starts if start <= t < start + 20)

        return _trace(shape, 0.3, seed + 1)

    trace.__name__ = f"recurring_spikes_{period}s"
    return trace


def outage_storm() -> Trace:
    """5 cores (σ 0.3); at t = 1200 s an outage upstream sends nothing for 5 minutes; then
    its clients retry all at once: 3× the normal load, back to normal over ~5 minutes."""

    def shape(t: int) -> float:
        if 1200 <= t < 1500:
            return 0.0
        if t >= 1500:
            return 5.0 + 10.0 * math.exp(-(t - 1500) / 100)
        return 5.0

    return _trace(shape, 0.3, 20, 40 * 60)


def step() -> Trace:
    """3 cores, then 12 from t = 600 s on: the reaction time to one step."""
    return _trace(lambda t: 12.0 if t >= 600 else 3.0, 0.2, 21, 30 * 60)


def slow_startup() -> Trace:
    """Three hours of 3 → 15 → 3 cores (σ 0.5), a daily cycle compressed, for replicas that
    take minutes to start (replayed at SLOW_START_DELAYS)."""
    return _trace(lambda t: 9 - 6 * math.cos(2 * math.pi * t / (3 * HOUR)), 0.5, 22, 3 * HOUR)


TRACES: dict[str, Callable[[], Trace]] = {
    "diurnal": diurnal,
    "flash_crowd": flash_crowd,
    "square_wave": square_wave,
    "noisy_ramp": noisy_ramp,
    "noisy_diurnal": noisy_diurnal,
    "spikes": spikes,
    "slow_ramp": slow_ramp,
    "fast_ramp": fast_ramp,
    "startup_shift": startup_shift,
    "recurring_spikes_90s": recurring_spikes(90, 23),
    "recurring_spikes_3m": recurring_spikes(180, 25),
    "recurring_spikes_6m": recurring_spikes(360, 27),
    "outage_storm": outage_storm,
    "step": step,
    "slow_startup": slow_startup,
}
# trace → the start delay at second t, as a multiple of the nominal one
STARTUP_FACTORS: dict[str, Callable[[float], float]] = {
    "startup_shift": lambda t: 3.0 if 1200 <= t < 2400 else 1.0,
}
START_DELAYS = (2.0, 5.0, 15.0, 30.0, 60.0)
SLOW_START_DELAYS = (120.0, 300.0, 600.0)  # slow_startup's: 2, 5 and 10 minutes
# trace → the start delays it is replayed at (START_DELAYS unless named)
START_DELAYS_OF: dict[str, tuple[float, ...]] = {"slow_startup": SLOW_START_DELAYS}
# trace → the times of its upward steps, whose reaction times the rows give
STEPS: dict[str, tuple[int, ...]] = {
    "flash_crowd": (900,),
    "square_wave": (600, 1800, 3000),
    "fast_ramp": (600,),
    "outage_storm": (1500,),
    "step": (600,),
}


def delays_of(name: str) -> tuple[float, ...]:
    return START_DELAYS_OF.get(name, START_DELAYS)


def write_csv(trace: Trace, path: Path) -> None:
    path.write_text("t,demand\n" + "".join(f"{t},{d}\n" for t, d in trace))
