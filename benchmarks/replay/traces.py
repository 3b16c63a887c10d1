"""The four demand traces of the HPA comparison, generated with fixed seeds (1 h, 1 s steps)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

DURATION = 3600


def _trace(shape: Callable[[int], float], noise: float, seed: int) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(t, round(max(0.0, shape(t) + rng.gauss(0, noise)), 3)) for t in range(DURATION)]


def diurnal() -> list[tuple[int, float]]:
    """A day compressed into an hour: 1 → 11 cores and back, smoothly."""
    return _trace(lambda t: 6 - 5 * math.cos(2 * math.pi * t / DURATION), 0.3, 1)


def flash_crowd() -> list[tuple[int, float]]:
    """2 cores, then 14 at once for 10 minutes, then 2 again."""
    return _trace(lambda t: 14.0 if 900 <= t < 1500 else 2.0, 0.2, 2)


def square_wave() -> list[tuple[int, float]]:
    """3 and 10 cores in turn, 10 minutes each."""
    return _trace(lambda t: 10.0 if (t // 600) % 2 else 3.0, 0.2, 3)


def noisy_ramp() -> list[tuple[int, float]]:
    """1 → 16 cores over 50 minutes, with heavy noise, then level."""
    return _trace(lambda t: 1 + 15 * min(1.0, t / 3000), 0.8, 4)


TRACES = {
    "diurnal": diurnal,
    "flash_crowd": flash_crowd,
    "square_wave": square_wave,
    "noisy_ramp": noisy_ramp,
}


def write_csv(trace: list[tuple[int, float]], path: Path) -> None:
    path.write_text("t,demand\n" + "".join(f"{t},{d}\n" for t, d in trace))
