"""The ring windows' queries, exactly."""

import random

import pytest

from ebbflow.rules.engine import saturation_growth
from ebbflow.rules.window import RingWindow


def test_the_line_through_exact_points() -> None:
    w = RingWindow()
    for t in range(10):
        w.add(t, 2.0 + 0.5 * t)
    line = w.fit(0, 12)
    assert line is not None
    assert line.level == pytest.approx(8.0)  # read at t = 12, past the newest point
    assert line.slope == pytest.approx(0.5)
    assert line.slope_error == pytest.approx(0.0, abs=1e-12)
    assert line.noise == pytest.approx(0.0, abs=1e-12)
    assert line.rising(3.0)


def test_slope_error_and_noise_match_least_squares() -> None:
    rng = random.Random(1)
    w = RingWindow()
    for t in range(200):
        w.add(t, 5.0 + rng.gauss(0, 1.0))
    line = w.fit(0, 199)
    assert line is not None
    assert line.noise == pytest.approx(1.0, rel=0.15)
    # σ / sqrt(Σ(t - t̄)²) for 200 points 1 s apart
    assert line.slope_error == pytest.approx(line.noise / (200**3 / 12) ** 0.5, rel=0.01)
    assert not line.rising(3.0)  # flat load with noise: no trend


def test_no_line_from_too_little() -> None:
    w = RingWindow()
    for t in range(3):
        w.add(t, t)
    assert w.fit(0, 3) is None  # under 4 points
    for t in range(3, 10):
        w.add(t, t)
    assert w.fit(-60, 10) is None  # 9 s of points for a 70 s span
    assert w.fit(0, 10) is not None


def test_ring_keeps_the_newest_points() -> None:
    w = RingWindow(capacity=4)
    for t in range(6):
        w.add(t, t * 10)
    times, values = w.since(0)
    assert list(times) == [2, 3, 4, 5] and list(values) == [20, 30, 40, 50]
    assert w.aggregate(0, "max") == 50 and w.aggregate(4, "avg") == 45


def test_saturation_growth_follows_the_startup() -> None:
    assert saturation_growth(0) == 1.5
    assert saturation_growth(15) == 2.0
    assert saturation_growth(30) == 2.5
    assert saturation_growth(45) == saturation_growth(600) == 3.0


def test_a_clock_stepped_back_keeps_the_window_in_time_order() -> None:
    from ebbflow.rules.window import RingWindow

    window = RingWindow(capacity=4)
    for t, v in [(10.0, 1.0), (11.0, 2.0), (5.0, 3.0), (12.0, 4.0), (13.0, 5.0)]:
        window.add(t, v)
    times, values = window.since(11.0)
    assert times.tolist() == [11.0, 11.0, 12.0, 13.0]  # the stepped-back point at 11
    assert values.tolist() == [2.0, 3.0, 4.0, 5.0]
