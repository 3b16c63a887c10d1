"""Each reference autoscaler against its project's documented defaults (the sources are
cited in its module): what triggers it, what holds it, how far it moves."""

from __future__ import annotations

from ebbflow.rules.aws import AWSTargetTracking
from ebbflow.rules.hpa import HPA
from ebbflow.rules.kpa import KPA
from ebbflow.rules.nomad import NomadTargetValue
from ebbflow.rules.replay import Autoscaler


def drive(
    scaler: Autoscaler, start: int, end: int, cpu: float, ready: int, total: int, demand: float
) -> list[tuple[int, int]]:
    """(second, replicas wanted) for each decision over [start, end)."""
    return [
        (t, wanted)
        for t in range(start, end)
        for wanted, _ in scaler.observe(t, cpu, ready, total, demand)
    ]


def test_hpa_reference_rules() -> None:
    hpa = HPA(target=70, max_replicas=20)
    assert hpa.observe(0, 100.0, 2, 2, 2.0) == [(3, "hpa: 2→3, cpu 100.0% vs target 70%")]
    assert hpa.observe(5, 100.0, 2, 3, 2.0) == []  # between syncs (15 s)
    # within the tolerance (0.1): no change
    assert HPA(target=70).observe(0, 75.0, 4, 4, 3.0) == []
    # starting pods count as 0 %: 2 ready at 80 % of 4 → below target, no scale-up
    assert HPA(target=70).observe(0, 80.0, 2, 4, 1.6) == []
    # scale-up limited to max(100 %, +4) per sync
    assert HPA(target=10, max_replicas=50).observe(0, 100.0, 2, 2, 2.0)[0][0] == 6
    # scale-down waits for the highest recommendation of the last 300 s
    down = HPA(target=70)
    down.observe(0, 70.0, 4, 4, 2.8)
    assert down.observe(15, 10.0, 4, 4, 0.4) == []
    assert down.observe(300, 10.0, 4, 4, 0.4)[0][0] == 1


def test_kpa_panics_at_twice_the_target_over_6s_and_leaves_after_a_stable_window() -> None:
    kpa = KPA(target=70, max_replicas=50)
    # 60 s at the target: 2 replicas serving 1.4 cores; a decision every 2 s, none needed
    assert drive(kpa, 0, 60, 70.0, 2, 2, 1.4) == []
    # a burst of 6 cores: the 6 s window's (5 × 1.4 + 6) / 6 = 2.17 cores want
    # ⌈2.17 / 0.7⌉ = 4 replicas, 2 × the 2 ready: panic at once
    [(wanted, why)] = kpa.observe(60, 100.0, 2, 2, 6.0)
    assert (wanted, why.split(":")[0]) == (4, "kpa (panic)")
    drive(kpa, 61, 67, 100.0, 2, 2, 6.0)  # over the threshold until t = 66
    # in panic it never goes down, even when the load is gone ...
    assert drive(kpa, 67, 100, 10.0, 9, 9, 0.9) == []
    # ... until a whole stable window (60 s) has passed without being over the threshold
    exits = drive(kpa, 100, 130, 10.0, 9, 9, 0.9)
    assert exits and exits[0][0] == 128  # the first tick after 66 + 60
    assert exits[0][1] == 4  # then at most halving per tick: ⌊9 / 2⌋


def test_kpa_below_the_panic_threshold_follows_the_60s_average() -> None:
    kpa = KPA(target=70, max_replicas=50)
    drive(kpa, 0, 60, 70.0, 2, 2, 1.4)
    # 1.9 cores: (5 × 1.4 + 1.9) / 6 = 1.48 over 6 s wants 3, 1.5 × the ready: no panic
    [(wanted, why)] = kpa.observe(60, 95.0, 2, 2, 1.9)
    assert (wanted, why.split(":")[0]) == (3, "kpa (stable)")
    assert kpa.panic_since is None


def test_nomad_target_value_threshold_and_cooldown() -> None:
    # within the 1 % threshold of the target: nothing, ever
    assert drive(NomadTargetValue(target=70), 0, 600, 70.5, 4, 4, 2.8) == []
    nomad = NomadTargetValue(target=70, max_replicas=20)
    # ⌈4 × 90 / 70⌉ = 6 at the first evaluation; the next ones every 10 s
    assert drive(nomad, 0, 1, 90.0, 4, 4, 3.6) == [(0, 6)]
    # then a 5 minute cooldown, in both directions, whatever the metric says
    assert drive(nomad, 1, 300, 10.0, 4, 6, 0.4) == []
    assert drive(nomad, 300, 301, 10.0, 6, 6, 0.6) == [(300, 1)]


def test_aws_target_tracking_out_after_3_datapoints_in_after_15_well_below() -> None:
    aws = AWSTargetTracking(target=70, max_replicas=20)
    # above the target: the third 1-minute datapoint closes at t = 180 s
    out = drive(aws, 0, 200, 90.0, 4, 4, 3.6)
    assert out == [(180, 6)]  # ⌈4 × 90 / 70⌉
    # just under the target but above 90 % of it (63 %): never scales in
    calm = AWSTargetTracking(target=70, max_replicas=20)
    assert drive(calm, 0, 1200, 65.0, 6, 6, 3.9) == []
    # well below: in only once 15 datapoints are, then not again within 300 s
    low = AWSTargetTracking(target=70, max_replicas=20)
    decisions = drive(low, 0, 1500, 30.0, 10, 10, 3.0)
    assert decisions[0] == (900, 5)  # the 15th datapoint closes at t = 900 s
    low2 = AWSTargetTracking(target=70, max_replicas=20)
    assert drive(low2, 0, 901, 30.0, 10, 10, 3.0) == [(900, 5)]
    assert drive(low2, 901, 1200, 20.0, 5, 5, 1.0) == []  # scale-in cooldown
    assert drive(low2, 1200, 1201, 20.0, 5, 5, 1.0) == [(1200, 2)]
