"""The HPA comparison of benchmarks/replay as a regression guard: every trace at every
start delay, deterministic, no timing.

Each row must meet the goals (rules/replay.py: `goals_missed`). The rows that miss are
listed here with why, as in benchmarks/README.md, and marked strict xfail: a change that
makes one pass fails the run too, so the table cannot go stale either way.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "replay"))

from compare import run_one
from traces import START_DELAYS, TRACES

from ebbflow.rules.hpa import HPA

SPIKES = (
    "spikes of 10-40 s end before most capacity ordered for them is ready and come back "
    "every 2-6 minutes: each one is a scale-out and a scale-in (27 reversals, 12 allowed); "
    "holding the capacity from one to the next, as HPA's 5-minute stabilisation does, "
    "costs 5-20 % more replica seconds than HPA's (benchmarks/README.md)"
)
NOISY_RAMP = (
    "0.4-1.5 % more replica seconds than HPA: on σ 0.8 noise at 1-5 replicas, the "
    "headroom (1.5σ) and the kept peak cost more than HPA's ±10 % tolerance; in exchange "
    "56-58 % fewer violation seconds"
)
SLOW_RAMP = (
    "at the noise floor: 2 violation seconds against HPA's 0-2 in the hour, two noise "
    "peaks of 2.5σ at 4 replicas where HPA's rounding up had 5"
)
KNOWN_MISSES = {
    **{("spikes", d): SPIKES for d in START_DELAYS},
    **{("noisy_ramp", d): NOISY_RAMP for d in (2.0, 5.0, 30.0, 60.0)},
    **{("slow_ramp", d): SLOW_RAMP for d in START_DELAYS},
    ("noisy_diurnal", 5.0): "0.25 % more replica seconds than HPA (79,077 against 78,883): "
    "no decision rests on less than a full window after a start, so the trace's first 30 s "
    "hold the initial count where HPA acts on its first sample",
}


def rows() -> list[object]:
    params = []
    for name in TRACES:
        for delay in START_DELAYS:
            marks = []
            if (name, delay) in KNOWN_MISSES:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[name, delay]))
            params.append(pytest.param(name, delay, marks=marks, id=f"{name}-{delay:g}s"))
    return params


@pytest.mark.parametrize(("trace", "start_delay"), rows())
def test_goals_against_hpa(trace: str, start_delay: float) -> None:
    row = run_one(trace, start_delay)
    assert row.missed == []


def test_hpa_reference_rules() -> None:
    hpa = HPA(target=70, max_replicas=20)
    assert hpa.observe(0, 100.0, 2, 2) == [(3, "hpa: 2→3, cpu 100.0% vs target 70%")]
    assert hpa.observe(5, 100.0, 2, 3) == []  # between syncs
    # within the tolerance: no change
    assert HPA(target=70).observe(0, 75.0, 4, 4) == []
    # starting pods count as 0 %: 2 ready at 80 % of 4 → below target, no scale-up
    assert HPA(target=70).observe(0, 80.0, 2, 4) == []
    # scale-up limited to max(100 %, +4) per sync
    assert HPA(target=10, max_replicas=50).observe(0, 100.0, 2, 2)[0][0] == 6
    # scale-down waits for the highest recommendation of the last 300 s
    down = HPA(target=70)
    down.observe(0, 70.0, 4, 4)
    assert down.observe(15, 10.0, 4, 4) == []
    assert down.observe(300, 10.0, 4, 4)[0][0] == 1
