"""The replay model, exactly as specified, and the real engine under it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ebbflow.rules.references import REFERENCES, run_references
from ebbflow.rules.replay import load_labels, load_trace, replay, simulate

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "replay"))

from compare import EBBFLOW_LABELS, NAMES, run_one, warm_start
from traces import TRACES, write_csv


def ebbflow_replay(cwd: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ebbflow", "replay", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


class Scripted:
    """An autoscaler that decides what the test says, when it says."""

    def __init__(self, plan: dict[int, int]) -> None:
        self.plan = plan
        self.seen: list[tuple[float, float | None, int, int]] = []

    def observe(self, t, cpu_percent, ready, total, demand):
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
    out = ebbflow_replay(tmp_path, trace, "--labels", labels, "--start-delay", "3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"decisions", "summary", "references", "references_about", "goals_missed"}
    # each reference under the same model, start and target
    assert list(result["references"]) == ["hpa", "kpa", "nomad", "aws"]
    for name, make in REFERENCES.items():
        summary = simulate(load_trace(trace), make(70.0, 1, 10), 1, 3.0).as_dict()["summary"]
        assert result["references"][name] == summary, name
    assert isinstance(result["goals_missed"], list)
    assert set(result["summary"]) == {
        "violation_seconds",
        "unserved_core_seconds",
        "replica_seconds",
        "actions",
        "reversals",
        "used_core_seconds",
        "reactions",
        "slack",
    }
    assert {"t", "from", "to", "reason"} == set(result["decisions"][0])
    bad = ebbflow_replay(tmp_path, trace, "--labels", tmp_path / "missing")
    assert bad.returncode == 2 and "missing" in bad.stderr


def test_replay_command_reports_the_benchmarks_references(tmp_path: Path) -> None:
    """A user's own trace gets the comparison the benchmark table makes: run on one of its
    traces, `ebbflow replay` prints the same five summaries as benchmarks/replay."""
    trace = TRACES["flash_crowd"]()
    path = tmp_path / "flash.csv"
    write_csv(trace, path)
    labels = tmp_path / "labels"
    labels.write_text(
        "".join(f"{k}={v}\n" for k, v in EBBFLOW_LABELS.items())
        + f"ebbflow.scale.initial_replicas={warm_start(trace)}\n"
    )
    out = ebbflow_replay(tmp_path, path, "--labels", labels, "--start-delay", "30")
    assert out.returncode == 0, out.stderr
    row = run_one("flash_crowd", 30.0)
    lines = out.stdout.splitlines()
    for name, summary in row.summaries().items():
        line = next(x for x in lines if x.startswith(f"{name} "))
        assert f"violation_seconds={summary.violation_seconds} " in line
        assert f"replica_seconds={summary.replica_seconds} " in line
        assert f"reversals={summary.reversals} " in line
        assert line.endswith(f"slack={summary.slack:.3f}")
    assert [line.split()[0] for line in lines[-7:-2]] == list(NAMES)
    assert "references at target 70% CPU, replicas 1..20" in out.stdout
    verdict = "met" if not row.missed else "missed: " + "; ".join(row.missed)
    assert lines[-1].endswith(verdict)


def test_no_references_without_a_cpu_target() -> None:
    labels = {"aliyun.auto_scaling.max_cpu": "70", "aliyun.auto_scaling.min_cpu": "20"}
    references = run_references([(0, 1.0)], labels)
    assert references.runs == {} and "no CPU target" in references.about


def test_start_delay_may_change_over_the_trace() -> None:
    # a start-up of 2 s for what is decided before t = 5, of 4 s after
    trace = [(t, 2.0) for t in range(20)]
    result = simulate(trace, Scripted({0: 2, 6: 1, 10: 2}), 1, lambda t: 2.0 if t < 5 else 4.0)
    # 1 ready until t=2 (2 s), 1 again from t=7 (scaled in at 6) until 10 + 4 = 14
    assert result.summary.violation_seconds == 2 + 7


def test_slack_and_reaction_time() -> None:
    """Slack is Autopilot's (provisioned − used) / provisioned over the run; the reaction
    to a step is the time from it to the first replica decided after it being ready."""
    trace = [(t, 1.0 if t < 10 else 3.0) for t in range(40)]
    # 2 replicas; at t = 12 the scaler asks for 4, ready 5 s later (t = 17)
    result = simulate(trace, Scripted({12: 4}), 2, 5.0, steps=(10, 30))
    s = result.summary
    assert s.replica_seconds == 13 * 2 + 27 * 4  # a second counts what it began with
    # used: 1 core for 10 s, then 2 (all that is ready) until 17, then 3
    assert s.used_core_seconds == 10 * 1 + 7 * 2 + 23 * 3
    assert s.slack == pytest.approx(1 - 93 / 134)
    # the step at 10 s: reacted to at t = 17; none came after the one at 30 s
    assert s.reactions == [7.0, None] and s.reaction is None
    assert simulate(trace, Scripted({12: 4}), 2, 5.0, steps=(10,)).summary.reaction == 7.0
