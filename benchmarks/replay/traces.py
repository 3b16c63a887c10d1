"""The demand traces of the HPA comparison, generated with fixed seeds (1 s steps).

Each family shows one thing an autoscaler gets wrong: smooth daily load (diurnal, noisy
diurnal), sudden steps (flash crowd, square wave), short spikes on a noisy base, ramps slow,
fast and noisy, and start-up times that change under it (startup shift).
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
}
# trace → the start delay at second t, as a multiple of the nominal one
STARTUP_FACTORS: dict[str, Callable[[float], float]] = {
    "startup_shift": lambda t: 3.0 if 1200 <= t < 2400 else 1.0,
}
START_DELAYS = (2.0, 5.0, 15.0, 30.0, 60.0)


def write_csv(trace: Trace, path: Path) -> None:
    path.write_text("t,demand\n" + "".join(f"{t},{d}\n" for t, d in trace))
