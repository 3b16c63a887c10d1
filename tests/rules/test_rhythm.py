"""Peaks that recur (rules/rhythm.py): what is a peak, when they are a rhythm, how long
it holds, and that noise, level changes and a single peak are none."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from ebbflow.rules.rhythm import RECUR_SLACK, Rhythm
from ebbflow.rules.window import RingWindow


def run(load: Callable[[int], float], seconds: int, horizon: float = 10.0) -> Rhythm:
    """The rhythm of a load (replicas at target) evaluated once a second."""
    rhythm, window = Rhythm(), RingWindow()
    for t in range(seconds):
        window.add(t, load(t))
        rhythm.observe(window, t, horizon, saturated=False)
    return rhythm


def spikes(period: int, length: int = 20, base: float = 6.0, height: float = 8.0,
           noise: float = 0.3, seed: int = 1) -> Callable[[int], float]:  # fmt: skip
    rng = random.Random(seed)
    return lambda t: base + (height if t % period >= period - length else 0) + rng.gauss(0, noise)


def test_peaks_that_come_back_are_a_rhythm_held_for_one_and_a_half_gaps() -> None:
    rhythm = run(spikes(90), 400)  # peaks from t = 70, 160, 250, 340
    starts = [start for start, _ in rhythm.peaks]
    assert starts == [70, 160, 250, 340]
    assert all(end - start == 19 for start, end in rhythm.peaks)
    assert rhythm.hold(400) == RECUR_SLACK * 90
    # it holds until a peak fails to come within 1.5 gaps of the last one
    assert rhythm.hold(340 + 135) == 135
    assert rhythm.hold(340 + 136) == 0.0


def test_one_peak_is_no_rhythm_and_two_are() -> None:
    one = run(spikes(300), 301)  # one peak, at 280-299, ended by t = 300 + quiet
    assert one.hold(300) == 0.0
    two = run(spikes(200), 420)  # peaks at 180 and 380
    assert [start for start, _ in two.peaks] == [180, 380]
    assert two.hold(419) == RECUR_SLACK * 200


def test_peaks_further_apart_than_ten_minutes_are_no_rhythm() -> None:
    rhythm = run(spikes(700), 1450)
    assert len(rhythm.peaks) == 2 and rhythm.hold(1449) == 0.0


@pytest.mark.parametrize("noise", [0.3, 1.0, 2.0])
def test_noise_alone_is_never_a_peak(noise: float) -> None:
    rng = random.Random(5)
    rhythm = run(lambda t: 6.0 + rng.gauss(0, noise), 7200)
    assert rhythm.peaks == []


def test_a_change_of_level_is_no_peak() -> None:
    """A square wave's high level lasts longer than a peak may: it is followed, not held."""
    rhythm = run(lambda t: 14.0 if (t // 600) % 2 else 4.0, 3600, horizon=30.0)
    assert rhythm.peaks == []


def test_a_peak_longer_than_three_start_ups_is_no_peak_however_it_recurs() -> None:
    # 100 s high every 5 minutes: within max(120 s, 3 start-ups) at any start-up: peaks
    assert len(run(spikes(300, length=100), 1510, horizon=10.0).peaks) == 5
    # 140 s high: a change of level at 10 s start-ups, a peak at 60 s ones (capacity
    # ordered for it would serve little more than half of it)
    assert run(spikes(400, length=140), 1610, horizon=10.0).peaks == []
    assert len(run(spikes(400, length=140), 1610, horizon=60.0).peaks) == 4


def test_saturated_points_count_as_a_peak_whatever_they_show() -> None:
    """At 100 % the replicas show their capacity, not the load: a spike a service cannot
    start capacity within may show barely above its base."""
    rhythm, window = Rhythm(), RingWindow()
    for t in range(400):
        in_spike = t % 90 >= 70
        window.add(t, 7.0 if in_spike else 6.0)  # 6 → 7: within noise thresholds
        rhythm.observe(window, t, 60.0, saturated=in_spike)
    assert [start for start, _ in rhythm.peaks] == [70, 160, 250, 340]


LABELS = {
    "ebbflow.scale.target": "70",
    "ebbflow.scale.max_replicas": "12",
    "ebbflow.scale.initial_replicas": "3",
}


def spiky_trace(spikes_at: list[int], seconds: int) -> list[tuple[float, float]]:
    """2 cores, 6 for 20 s at each of `spikes_at`: the live test's shape, in cores."""
    return [(t, 6.0 if any(s <= t < s + 20 for s in spikes_at) else 2.0) for t in range(seconds)]


def replicas_at(decisions: list[dict[str, object]], initial: int, t: float) -> int:
    count = initial
    for d in decisions:
        if float(str(d["t"])) < t:
            count = int(str(d["to"]))
    return count


def test_the_engine_keeps_capacity_from_one_recurring_spike_to_the_next() -> None:
    """Through the real engine (replay): after the second spike, the capacity the spikes
    need stays, so the third and fourth find it in place."""
    from ebbflow.rules.replay import replay

    starts = [60, 150, 240, 330]
    result = replay(spiky_trace(starts, 420), LABELS, start_delay=10.0)
    moves = [(d["t"], d["from"], d["to"]) for d in result.decisions]
    needed = 8  # 6 cores at a recurring peak's 1/0.9 of the target (78 %)
    for start in starts[2:]:
        assert replicas_at(result.decisions, 3, start) >= needed, moves
    # after the second spike nothing goes below what the spikes need (a trim to it may be)
    assert all(int(str(to)) >= needed for t, _, to in moves if float(str(t)) > starts[1]), moves
    assert result.summary.reversals < len(starts), moves
    during = [d for d in result.decisions if float(str(d["t"])) > starts[1] + 20]
    assert during, moves


def test_a_decision_during_a_rhythm_says_what_its_peaks_need() -> None:
    """Trimmed to what the peaks need while they recur, given back once they stop: the
    first decision carries the need in its inputs, the second none."""
    from ebbflow.rules.replay import EngineAutoscaler, simulate

    scaler = EngineAutoscaler(LABELS)
    starts = [60, 150, 240, 330]
    simulate(spiky_trace(starts, 500), scaler, 3, 10.0)
    after = [d for d in reversed(scaler.engine.store.recent()) if d.timestamp > starts[1] + 20]
    assert [d.inputs.get("recurring_peaks_need") for d in after] == [8, None], [
        (d.timestamp, d.reason) for d in after
    ]
    assert after[1].timestamp > starts[-1] + RECUR_SLACK * 90  # the rhythm's end
