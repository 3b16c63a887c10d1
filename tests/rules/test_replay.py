"""The replay model, exactly as specified, and the real engine under it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ebbflow.rules.replay import load_labels, load_trace, replay, simulate


class Scripted:
    """An autoscaler that decides what the test says, when it says."""

    def __init__(self, plan: dict[int, int]) -> None:
        self.plan = plan
        self.seen: list[tuple[float, float | None, int, int]] = []

    def observe(self, t, cpu_percent, ready, total):
        self.seen.append((t, cpu_percent, ready, total))
        return [(self.plan[int(t)], "scripted")] if int(t) in self.plan else []


def test_the_model_exactly() -> None:
    trace = [(t, 3.0) for t in range(10)]
    scaler = Scripted({0: 3, 6: 1})
    result = simulate(trace, scaler, initial=1, start_delay=5)
    # t=0: 1 ready serving 3 cores → 100 %; 2 more start, ready at t=5
    assert scaler.seen[0] == (0, 100.0, 1, 1)
    assert scaler.seen[4] == (4, 100.0, 1, 3)
    assert scaler.seen[5] == (5, 100.0, 3, 3)
    assert scaler.seen[6] == (6, 100.0, 3, 3)
    assert scaler.seen[7] == (7, 100.0, 1, 1)  # scale-in removed replicas at once
    s = result.summary
    assert s.violation_seconds == 5 + 3  # t=0..4 (1 ready) and t=7..9
    assert s.unserved_core_seconds == pytest.approx(2.0 * 8)
    assert s.replica_seconds == 1 + 3 * 6 + 1 * 3  # starting replicas count
    assert (s.actions, s.reversals) == (2, 1)
    assert result.decisions == [
        {"t": 0, "from": 1, "to": 3, "reason": "scripted"},
        {"t": 6, "from": 3, "to": 1, "reason": "scripted"},
    ]


def test_cpu_percent_is_shared_by_ready_replicas() -> None:
    scaler = Scripted({})
    simulate([(0, 0.5), (1, 1.5)], scaler, initial=2)
    assert [cpu for _, cpu, _, _ in scaler.seen] == [25.0, 75.0]


def test_the_real_engine_under_replay() -> None:
    trace = [(t, 1.0 if t < 60 else 6.0) for t in range(300)]
    labels = {"ebbflow.scale.target": "70", "ebbflow.scale.max_replicas": "12"}
    result = replay(trace, labels, start_delay=5)
    ups = [d for d in result.decisions if d["to"] > d["from"]]
    assert ups and all(d["t"] >= 0 for d in ups)
    final = result.decisions[-1]["to"]
    assert 6 / final <= 0.7 * 1.15 + 1e-9  # settles at or under the target's tolerance
    assert result.summary.violation_seconds < 30
    assert all(d["reason"].startswith("svc: ") for d in result.decisions)


def test_initial_count_from_the_policy() -> None:
    result = replay(
        [(0, 0.1), (1, 0.1)],
        {"aliyun.scale": "3", "ebbflow.scale.target": "70", "ebbflow.scale.min_replicas": "2"},
    )
    assert result.summary.replica_seconds >= 3  # started at 3, not at min_replicas


def test_inputs_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("time,load\n0,1\n")
    with pytest.raises(ValueError, match="t,demand"):
        load_trace(bad)
    bad.write_text("t,demand\n0,lots\n")
    with pytest.raises(ValueError, match=r"t\.csv:2"):
        load_trace(bad)
    labels = tmp_path / "labels"
    labels.write_text("# comment\nebbflow.scale.target=70\nnot a label\n")
    with pytest.raises(ValueError, match="labels:3: expected key=value"):
        load_labels(labels)
    yaml_labels = tmp_path / "labels.yaml"
    yaml_labels.write_text("ebbflow.scale.target: 70\n")
    assert load_labels(yaml_labels) == {"ebbflow.scale.target": "70"}
    with pytest.raises(ValueError, match="no scaling policy"):
        replay([(0, 1.0)], {"com.example": "x"})


def test_replay_command_json(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("t,demand\n" + "".join(f"{t},{1 if t < 30 else 4}\n" for t in range(120)))
    labels = tmp_path / "labels"
    labels.write_text("ebbflow.scale.target=70\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ebbflow",
            "replay",
            str(trace),
            "--labels",
            str(labels),
            "--start-delay",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"decisions", "summary"}
    assert set(result["summary"]) == {
        "violation_seconds",
        "unserved_core_seconds",
        "replica_seconds",
        "actions",
        "reversals",
    }
    assert {"t", "from", "to", "reason"} == set(result["decisions"][0])
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "ebbflow",
            "replay",
            str(trace),
            "--labels",
            str(tmp_path / "missing"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "missing" in bad.stderr
