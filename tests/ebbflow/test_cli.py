"""The CLI as an operator uses it: a separate process against the real engine."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ebbflow.docker_api import DockerHandle
from ebbflow.model import Decision, HealingStep, ServiceKey
from ebbflow.state import DecisionStore, LearnedStartup


def ebbflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ebbflow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.integration
def test_policies_collect_and_errors(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    compose = ("--label", f"com.docker.compose.project={project}")
    run_container(
        f"{project}_good_1",
        "--network",
        "none",
        *compose,
        "--label",
        "com.docker.compose.service=good",
        "--label",
        "aliyun.auto_scaling.max_cpu=70",
        "--label",
        "aliyun.auto_scaling.min_cpu=20",
        "--label",
        "aliyun.probe.cmd=true",
        "--label",
        "ebbflow.scrape.port=9",
    )
    run_container(
        f"{project}_bad_1",
        "--network",
        "none",
        *compose,
        "--label",
        "com.docker.compose.service=bad",
        "--label",
        "aliyun.auto_scaling.max_cpu=abc",
        "--label",
        "aliyun.auto_scaling.step=-1",
        "--label",
        "ebbflow.health.interval=bogus",
    )
    result = ebbflow("policies", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["service"]: row for row in json.loads(result.stdout)}
    good, bad = rows[f"compose:{project}/good"], rows[f"compose:{project}/bad"]
    assert good["policy"]["rules"][0]["max"] == 70 and good["errors"] == []
    assert bad["policy"] is None
    assert any(e.startswith("aliyun.auto_scaling.max_cpu:") and "'abc'" in e for e in bad["errors"])
    assert any(e.startswith("aliyun.auto_scaling.step:") for e in bad["errors"])
    text = ebbflow("policies", cwd=tmp_path).stdout
    assert f"compose:{project}/bad" in text and "INVALID" in text

    assert good["probe"] == {"cmd": ["true"]} and good["probe_errors"] == []
    assert good["declared"] is None and good["at_max"] is False and good["paused"] is False
    assert bad["probe"] is None and bad["probe_errors"] == [
        "ebbflow.health.interval: Input should be a valid number, unable to parse string as a "
        "number (got 'bogus')"
    ]

    collected = ebbflow("collect", "--once", "--json", cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    samples = json.loads(collected.stdout)
    names = {s["labels"].get("name") for s in samples if s["input"] == "containers"}
    assert {f"{project}_good_1", f"{project}_bad_1"} <= names
    inputs = {s["input"] for s in samples}
    assert {"containers", "node", "probes", "scrape"} <= inputs, inputs
    assert any(s["name"] == "node_load1" for s in samples)
    mine = {
        (s["name"], s["labels"].get("reason", "")): s["value"]
        for s in samples
        if s["labels"].get("name") == f"{project}_good_1"
    }
    assert mine[("probe_success", "")] == 1  # the exec probe ran in the container
    assert mine[("ebbflow_scrape_up", "")] == 0  # network none: no address to scrape
    cpu = [
        s
        for s in samples
        if s["name"] == "ebbflow_container_cpu_percent"
        and s["labels"]["name"] == f"{project}_good_1"
    ]
    assert len(cpu) == 1 and 0 <= cpu[0]["value"] < 50


def test_decisions_reads_the_audit_log(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "s.db")
    web = ServiceKey("compose", "web", "shop")
    d = Decision(web, 1, 2, "shop/web: 1→2, cpu avg 91.0% > max 40% over 10s", 1.0e9)
    store.record(d)
    store.record_outcome(d, True, "started shop_web_2")
    store.close()
    text = ebbflow("decisions", "--state", str(tmp_path / "s.db"), cwd=tmp_path).stdout
    assert "shop/web: 1→2, cpu avg 91.0% > max 40% over 10s  [ok: started shop_web_2]" in text
    rows = json.loads(
        ebbflow(
            "decisions",
            "--state",
            str(tmp_path / "s.db"),
            "--json",
            "--service",
            "compose:shop/web",
            cwd=tmp_path,
        ).stdout
    )
    assert [(r["from_replicas"], r["to_replicas"], r["outcome"]) for r in rows] == [(1, 2, "ok")]


def test_healing_reads_the_healing_log(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "s.db")
    web = ServiceKey("label", "web")
    store.record_step(
        HealingStep(web, "web-1", "restart", "exited with code 3", 2, True, "restarted web-1", 1e9),
        "web-1",
    )
    store.close()
    text = ebbflow("healing", "--state", str(tmp_path / "s.db"), cwd=tmp_path).stdout
    assert "label:web web-1: restart #2 (exited with code 3)  [ok: restarted web-1]" in text
    rows = json.loads(
        ebbflow("healing", "--state", str(tmp_path / "s.db"), "--json", cwd=tmp_path).stdout
    )
    assert [(r["action"], r["attempt"], r["ok"], r["dry_run"]) for r in rows] == [
        ("restart", 2, True, False)
    ]


def test_config_errors_exit_2_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("interval: often\n")
    result = ebbflow("run", "--config", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "bad.yaml: interval:" in result.stderr and "'often'" in result.stderr


def test_an_unreachable_engine_is_named(tmp_path: Path) -> None:
    result = ebbflow(
        "policies", cwd=tmp_path, env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    )
    assert result.returncode == 1
    assert f"cannot reach the Docker engine at unix://{tmp_path}/nothing.sock" in result.stderr


def test_docker_host_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert DockerHandle().host == "tcp://127.0.0.1:2375"
    assert DockerHandle("unix:///x.sock").host == "unix:///x.sock"  # config wins


def test_explain_shows_reasons_and_inputs(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "s.db")
    web = ServiceKey("compose", "web", "shop")
    for n, (a, b) in enumerate([(1, 2), (2, 4)]):
        d = Decision(
            web,
            a,
            b,
            f"web: {a}→{b}, cpu avg 91.0% > target 60.0% over 30s",
            1.0e9 + n,
            {"cpu_avg": 91.0, "replicas": a},
        )
        store.record(d)
        store.record_outcome(d, True, f"started {b - a}")
    store.close()
    state = str(tmp_path / "s.db")
    text = ebbflow("explain", "web", "--state", state, cwd=tmp_path).stdout
    assert text.startswith("compose:shop/web: start-up not seen yet; decisions use the policy's")
    assert "compose:shop/web: last 2 decision(s)" in text
    assert "web: 2→4, cpu avg 91.0% > target 60.0% over 30s" in text
    assert "inputs:  cpu_avg=91  replicas=2" in text
    assert text.index("1→2") < text.index("2→4")  # newest last
    unknown = ebbflow("explain", "api", "--state", state, cwd=tmp_path)
    assert unknown.returncode == 1 and "compose:shop/web" in unknown.stderr
    store = DecisionStore(tmp_path / "s.db")
    store.record_startup(web, LearnedStartup(7.25, 6.5, 3, 1.0e9 + 5))
    store.close()
    text = ebbflow("explain", "web", "--state", state, cwd=tmp_path).stdout
    assert text.startswith(
        "compose:shop/web: start-up 7.2s, learned from 3 new replica(s) (the newest took 6.5s"
    )
    shown = json.loads(ebbflow("explain", "web", "--state", state, "--json", cwd=tmp_path).stdout)
    assert shown["startup"] == {
        "seconds": 7.25,
        "last_seconds": 6.5,
        "seen": 3,
        "timestamp": 1.0e9 + 5,
    }


def test_reading_commands_never_create_a_state_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    for command in (["decisions"], ["healing"], ["explain", "web"]):
        result = ebbflow(*command, "--state", str(missing), cwd=tmp_path)
        assert result.returncode == 1, command
        assert f"no state file at {missing}" in result.stderr
        assert "Traceback" not in result.stderr
    assert not missing.exists() and list(tmp_path.iterdir()) == []


def test_decisions_takes_every_service_form_explain_takes(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "s.db")
    for key in (ServiceKey("compose", "web", "shop"), ServiceKey("compose", "db", "shop")):
        d = Decision(key, 1, 2, f"{key.name}: 1→2", 1.0e9)
        store.record(d)
    store.close()
    for form in ("compose:shop/web", "shop/web", "web"):
        out = ebbflow("decisions", "--state", str(tmp_path / "s.db"), "--json", "--service", form,
                      cwd=tmp_path).stdout  # fmt: skip
        assert [r["reason"] for r in json.loads(out)] == ["web: 1→2"], form
    unknown = ebbflow(
        "decisions", "--state", str(tmp_path / "s.db"), "--service", "api", cwd=tmp_path
    )
    assert unknown.returncode == 1 and "'api' has no decisions" in unknown.stderr


def test_version() -> None:
    from importlib.metadata import version

    result = ebbflow("--version", cwd=Path("/"))
    assert result.returncode == 0 and result.stdout.strip() == f"ebbflow {version('ebbflow')}"


def test_pause_resume_and_forget(tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    store = DecisionStore(state)
    d = Decision(ServiceKey("compose", "web", "shop"), 1, 2, "web: 1→2", 1.0e9)
    store.record(d)
    store.record_outcome(d, True, "ok")
    store.close()
    paused = ebbflow("pause", "shop/web", "--state", state, cwd=tmp_path)
    assert paused.returncode == 0 and paused.stdout.startswith("shop/web: paused")
    assert DecisionStore(state).controls() == [("shop/web", True, None)]
    assert ebbflow("resume", "shop/web", "--state", state, cwd=tmp_path).returncode == 0
    assert DecisionStore(state).controls() == [("shop/web", False, None)]
    forgot = ebbflow("forget", "web", "--state", state, cwd=tmp_path)
    assert forgot.stdout.strip() == (  # no instance runs on it: the command says so
        "compose:shop/web: forgot 1 decision(s) and its desired count; "
        f"no instance runs on {state}: taken at its next start"
    )
    assert DecisionStore(state).recent() == []


@pytest.mark.integration
def test_policies_show_shared_probes_at_max_paused_and_retired(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    service = f"{project}-edge"
    for n in (1, 2):  # host networking: both probe 127.0.0.1:9 (nothing answers; no traffic)
        run_container(
            f"{service}-{n}", "--network", "host",
            "--label", f"ebbflow.service={service}",
            "--label", "aliyun.scale=2",
            "--label", "ebbflow.scale.max_replicas=2",
            "--label", "ebbflow.health.url=tcp://container:9",
            "--label", "ebbflow.health.interval=30",
        )  # fmt: skip
    state = tmp_path / "state.db"
    store = DecisionStore(state)
    gone = ServiceKey("label", f"{project}-gone")
    retired = Decision(gone, 2, 0, "retired", 1.0, origin="operator")
    store.record(retired)
    store.record_outcome(retired, True, "done by the operator")
    store.close()
    assert ebbflow("pause", service, "--state", str(state), cwd=tmp_path).returncode == 0
    result = ebbflow("policies", "--json", "--state", str(state), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["service"]: row for row in json.loads(result.stdout)}
    edge = rows[f"label:{service}"]
    assert edge["declared"] == 2 and edge["at_max"] is True and edge["paused"] is True
    assert edge["source"] == f"{service}-1"  # the founder
    assert edge["probe"] == {"url": "tcp://container:9", "interval": 30.0}
    assert edge["warnings"] == [
        f"replicas {service}-1, {service}-2 on host networking probe the same address "
        "tcp://127.0.0.1:9: probed once, as the service's probe; its failures restart no replica"
    ]
    assert rows[f"label:{project}-gone"]["retired"] is True
    text = ebbflow("policies", "--state", str(state), cwd=tmp_path).stdout
    assert "[at max]" in text and "[paused" in text and "RETIRED" in text


@pytest.mark.parametrize("command", [["run"], ["decisions"], ["pause", "web"]])
def test_a_corrupt_state_file_fails_in_one_line_naming_path_and_cause(
    tmp_path: Path, command: list[str]
) -> None:
    state = tmp_path / "state.db"
    state.write_bytes(b"not a database, whatever it once was " * 200)
    done = ebbflow(*command, "--state", str(state), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"ebbflow: state file {state}: cannot be used: file is not a database"
    ]
