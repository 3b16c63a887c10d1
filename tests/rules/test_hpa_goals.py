"""The HPA comparison of benchmarks/replay as a regression guard: deterministic, no timing.

If a change to the engine loses a goal, this fails before the benchmark table goes stale.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "replay"))

from compare import run
from hpa import HPA
from traces import DURATION


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, dict[str, float]]]:
    return run(start_delay=5.0)


@pytest.mark.parametrize("trace", ["diurnal", "flash_crowd", "square_wave", "noisy_ramp"])
def test_fewer_violations_with_no_more_replicas(table, trace: str) -> None:
    hpa, ebb = table[trace]["hpa"], table[trace]["ebbflow"]
    assert ebb["violation_seconds"] <= 0.7 * hpa["violation_seconds"]
    assert ebb["replica_seconds"] <= hpa["replica_seconds"]


def test_square_wave_reversals(table) -> None:
    assert table["square_wave"]["ebbflow"]["reversals"] <= DURATION / 600


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
