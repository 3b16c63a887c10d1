"""NaN, ±inf, huge and tiny numbers, in labels and in samples: the engine never raises and
never decides outside min..max."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebbflow.model import PolicyProblem
from ebbflow.policy import parse_policy
from ebbflow.rules.strategies import replica_count
from ebbflow.state import DecisionStore

from ..conftest import VirtualClock
from .harness import WEB, Harness

ODD = [math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, 1e-320, 1e-300, 1e300, 1e308, -1e308]
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(ODD)
label_numbers = numbers.map(repr) | st.sampled_from(["inf", "nan", "-inf", "1e400", "1e-320"])


@pytest.mark.parametrize(
    ("label", "value", "error"),
    [
        ("ebbflow.scale.target", "inf", "ebbflow.scale.target: Input should be a finite number"),
        ("ebbflow.scale.target", "nan", "ebbflow.scale.target: Input should be a finite number"),
        ("ebbflow.scale.target", "1e-320", "ebbflow.scale.target: is too small to compute with"),
        ("ebbflow.scale.max", "1e400", "ebbflow.scale.max: Input should be a finite number"),
        ("ebbflow.scale.cooldown", "inf", "ebbflow.scale.cooldown: Input should be a finite"),
        ("ebbflow.scale.window", "nan", "ebbflow.scale.window: Input should be a finite number"),
    ],
)
def test_non_finite_and_subnormal_labels_are_named_errors(
    label: str, value: str, error: str
) -> None:
    labels = {"ebbflow.scale.metric": "cpu", "ebbflow.scale.target": "50", label: value}
    if label == "ebbflow.scale.max":
        del labels["ebbflow.scale.target"]
    result = parse_policy(labels)
    assert result.policy is None
    assert any(e.startswith(error) for e in result.errors), result.errors


def test_replica_count_survives_any_float() -> None:
    assert replica_count(math.nan, 3) == 3
    assert replica_count(math.inf, 3) == 1_000_000_000
    assert replica_count(-math.inf, 3) == 0
    assert replica_count(1e308, 3) == 1_000_000_000
    assert replica_count(2.01, 3) == 3
    assert replica_count(2.0, 3) == 2


def test_a_sample_that_is_nan_or_inf_never_enters_a_window(tmp_path: Path) -> None:
    clock = VirtualClock()
    h = Harness(
        DecisionStore(tmp_path / "s.db"),
        clock,
        {
            "ebbflow.scale.target": "50",
            "ebbflow.scale.window": "5",
            "ebbflow.scale.max_replicas": "5",
        },
    )
    h.start()
    for value in (math.nan, math.inf, -math.inf):
        assert h.tick(value) == []
    assert h.engine.non_finite == 3
    assert h.tick(100.0, seconds=2)  # the first finite value decides (the 5 s window is
    # full): saturated, ×2.5 → 3
    assert h.moves() == [(1, 3)]


def test_an_evaluation_that_raises_disables_only_that_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = VirtualClock()
    h = Harness(DecisionStore(tmp_path / "s.db"), clock, {"ebbflow.scale.target": "50"})
    h.start()

    def broken(*_args: object) -> None:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(h.engine, "_recommendations", broken)
    assert h.tick(90.0) == []  # nothing raised out of the engine
    result = h.catalog.get(WEB).policy
    assert result.errors == ("evaluation failed: ZeroDivisionError: float division by zero",)
    problem = h.events.get_nowait()
    assert isinstance(problem, PolicyProblem) and problem.errors == result.errors
    assert h.engine.evaluation_errors == 1
    samples = h.telemetry()
    assert samples["ebbflow_policy_valid"] == 0.0
    assert samples["ebbflow_rules_evaluation_errors_total"] == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=label_numbers,
    bounds=st.tuples(st.integers(0, 20), st.integers(1, 20)),
    mode=st.sampled_from(["proportional", "predictive"]),
    metric=st.sampled_from(["cpu", "queue_depth"]),
    values=st.lists(numbers, min_size=1, max_size=25),
    headroom=st.sampled_from(["0", "1.75", "1e308"]),
)
def test_arbitrary_floats_never_raise_and_never_leave_min_max(
    target: str,
    bounds: tuple[int, int],
    mode: str,
    metric: str,
    values: list[float],
    headroom: str,
) -> None:
    low, high = min(bounds), max(bounds)
    labels = {
        "ebbflow.scale.metric": metric,
        "ebbflow.scale.target": target,
        "ebbflow.scale.min_replicas": str(low),
        "ebbflow.scale.max_replicas": str(high),
        "ebbflow.scale.window": "5",
        "ebbflow.scale.cooldown": "0",
        "ebbflow.scale.mode": mode,
        "ebbflow.scale.headroom": headroom,
    }
    clock = VirtualClock()
    h = Harness(DecisionStore(":memory:"), clock, labels)
    h.start(max(1, low))
    for value in values:
        h.tick(value, metric=metric if metric != "cpu" else "ebbflow_container_cpu_percent")
    assert h.engine.evaluation_errors == 0 and h.engine.event_errors == 0
    for decision in h.made:
        assert low <= decision.to_replicas <= high, decision
    usable = math.isfinite(float(target)) and abs(float(target)) >= 2.2250738585072014e-308
    if not usable:  # NaN, ±inf, overflow, subnormal: a named error, and no decision
        assert h.made == []
        (service,) = h.catalog
        assert service.policy.policy is None and service.policy.errors
