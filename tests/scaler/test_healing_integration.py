"""Healing on the real engine, through a real `ebbflow run`: a crash loop restarted with
growing delays and given up past its budget (with alerts to a real receiver), a replica
killed outside ebbflow restarted, replicas removed by hand taken as the operator's intent
(a manual scale-in, a retired service), and dry runs that change nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ebbflow.docker_api import parse_docker_time
from tests.conftest import docker_cli
from tests.ebbflow_process import Ebbflow, state_rows
from tests.receiver import Receiver, alerts, until

pytestmark = pytest.mark.integration

CRASH_LOOP = ("sh", "-c", "sleep 1; exit 3")


def healing_rows(state: Path) -> list[tuple[float, str, str, int]]:
    """(time, action, container, ok) of every healing step recorded so far."""
    rows = state_rows(state, "SELECT ts, action, container, ok FROM healing ORDER BY id")
    return [(float(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


def state_of(name: str) -> dict[str, object]:
    out = docker_cli("inspect", "--format", "{{json .State}}", name)
    return dict(json.loads(out))


async def start_ebbflow(ebbflow: Ebbflow, tmp_path: Path, receiver: Receiver, *extra: str) -> None:
    """`ebbflow run` with containers, probes, /metrics and webhooks to the receiver; returns
    once it serves its healing metrics."""
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "inputs": {"containers": {}, "probes": {}},
                "outputs": {
                    "prometheus": {},
                    "webhook": receiver.webhook_output(),
                },
                # Removals by hand are read after 3 s: nothing here redeploys.
                "reconcile": {"redeploy_window": 3},
            }
        )
    )
    ebbflow.start("--config", str(config), *extra)
    await until(lambda: ebbflow.metric("ebbflow_healing_given_up") is not None, 30)
    await until(lambda: ebbflow.metric("ebbflow_leader") == 1.0, 30)  # it may act


async def test_a_crash_loop_backs_off_then_is_given_up_with_an_alert(
    run_container: Callable[..., str],
    ebbflow: Ebbflow,
    receiver: Receiver,
    project: str,
    tmp_path: Path,
) -> None:
    await start_ebbflow(ebbflow, tmp_path, receiver)
    name = f"{project}-crash"
    labels = {"ebbflow.service": name, "ebbflow.heal.backoff": "1", "ebbflow.heal.budget": "2"}
    run_container(
        name,
        "--network",
        "none",
        *[arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")],
        cmd=CRASH_LOOP,
    )
    # exit → 1 s → restart → exit → 2 s → restart → exit → 4 s → replace → exit → give up
    await until(lambda: any(r[1] == "give_up" for r in healing_rows(ebbflow.state)), 60)
    rows = healing_rows(ebbflow.state)
    assert [(action, ok) for _, action, _, ok in rows] == [
        ("restart", 1),
        ("restart", 1),
        ("replace", 1),
        ("give_up", 1),
    ]
    times = [t for t, *_ in rows]
    # Each gap is the container's 1 s of life plus a backoff twice the one before.
    assert 1 + 2 <= times[1] - times[0] < 1 + 2 + 3
    assert 1 + 4 <= times[2] - times[1] < 1 + 4 + 3
    # Given up: the container stays down.
    await until(lambda: state_of(name)["Running"] is False, 10)
    died = state_of(name)["FinishedAt"]
    await asyncio.sleep(4)
    assert state_of(name)["Running"] is False and state_of(name)["FinishedAt"] == died
    assert len(healing_rows(ebbflow.state)) == 4
    assert ebbflow.metric("ebbflow_healing_given_up") == 1
    assert (
        ebbflow.metric("ebbflow_healing_steps_total", service=name, action="restart", outcome="ok")
        == 2
    )
    await until(
        lambda: any(
            a[1] == "EbbflowHealingGaveUp" for a in alerts(receiver.bodies.get("/hook", []))
        ),
        10,
    )
    sent = alerts(receiver.bodies["/hook"])
    names = [(status, alertname) for status, alertname, _ in sent]
    assert names.count(("firing", "EbbflowContainerRestarted")) == 2
    assert names.count(("firing", "EbbflowContainerReplaced")) == 1
    assert names.count(("firing", "EbbflowHealingGaveUp")) == 1
    gave_up = next(labels for _, n, labels in sent if n == "EbbflowHealingGaveUp")
    assert gave_up == {
        "alertname": "EbbflowHealingGaveUp",
        "service": name,
        "container": name,
        "severity": "critical",
    }
    assert "giving up" in ebbflow.logs()


def retired_statuses(receiver: Receiver) -> list[str]:
    return [
        a[0] for a in alerts(receiver.bodies.get("/hook", [])) if a[1] == "EbbflowServiceRetired"
    ]


def run_replicas(run_container: Callable[..., str], service: str, count: int) -> list[str]:
    names = [f"{service}-{n}" for n in range(1, count + 1)]
    for name in names:
        run_container(
            name,
            "--network",
            "none",
            "--label",
            f"ebbflow.service={service}",
            "--label",
            f"aliyun.scale={count}",
            "--label",
            "ebbflow.heal.backoff=1",
        )
    return names


async def test_a_killed_replica_is_restarted_one_removed_by_hand_is_a_manual_scale_in(
    run_container: Callable[..., str],
    ebbflow: Ebbflow,
    receiver: Receiver,
    project: str,
    tmp_path: Path,
) -> None:
    await start_ebbflow(ebbflow, tmp_path, receiver)
    first, second = run_replicas(run_container, f"{project}-web", 2)
    await asyncio.sleep(1)  # discovery has seen them
    killed_id = docker_cli("inspect", "--format", "{{.Id}}", first)
    docker_cli("kill", first)  # a crash, as far as anyone can tell
    await until(lambda: state_of(first)["Running"] is True, 20)
    assert docker_cli("inspect", "--format", "{{.Id}}", first) == killed_id  # restarted in place
    docker_cli("rm", "-f", second)  # the operator's own hand: intent, not failure
    await until(lambda: "a manual scale-in, desired count now 1" in ebbflow.logs(), 10)
    await asyncio.sleep(12)  # past the reconcile grace (10 s) and the heal backoff (1 s)
    assert docker_cli("ps", "-aq", "--filter", f"name=^{second}$") == ""  # not brought back
    assert state_of(first)["Running"] is True
    assert [
        (action, container, ok) for _, action, container, ok in healing_rows(ebbflow.state)
    ] == [("restart", first, 1)]
    service = f"label:{project}-web"
    assert state_rows(
        ebbflow.state,
        "SELECT from_replicas, to_replicas, origin, outcome FROM decisions"
        f" WHERE service = '{service}'",
    ) == [(2, 1, "operator", "ok")]
    assert ebbflow.metric("ebbflow_service_replicas_desired", service=f"{project}-web") == 1.0


async def test_a_service_whose_every_replica_was_removed_is_retired_until_it_starts_again(
    run_container: Callable[..., str],
    ebbflow: Ebbflow,
    receiver: Receiver,
    project: str,
    tmp_path: Path,
) -> None:
    await start_ebbflow(ebbflow, tmp_path, receiver)
    names = run_replicas(run_container, f"{project}-pair", 2)
    await asyncio.sleep(1)
    docker_cli("rm", "-f", *names)
    await asyncio.sleep(30)  # three reconcile grace periods (10 s), thirty heal backoffs
    assert docker_cli("ps", "-aq", "--filter", f"label=ebbflow.service={project}-pair") == ""
    assert healing_rows(ebbflow.state) == []
    logs = ebbflow.logs()
    assert logs.count(f"service {project}-pair retired") == 1
    assert "action failed" not in logs and "ERROR" not in logs
    assert "action refused" not in logs
    assert ebbflow.metric("ebbflow_service_retired", service=f"{project}-pair") == 1.0
    assert retired_statuses(receiver) == ["firing"]

    # It starts again: managed again, up to its declared count.
    run_container(
        names[0], "--network", "none",
        "--label", f"ebbflow.service={project}-pair", "--label", "aliyun.scale=2",
        "--label", "ebbflow.heal.backoff=1",
    )  # fmt: skip
    await until(
        lambda: (
            len(docker_cli("ps", "-q", "--filter", f"label=ebbflow.service={project}-pair").split())
            == 2
        ),
        40,
    )
    assert "a replica started again; managed again" in ebbflow.logs()
    await until(lambda: retired_statuses(receiver) == ["firing", "resolved"], 10)


async def test_dry_run_records_the_steps_and_changes_nothing(
    run_container: Callable[..., str],
    ebbflow: Ebbflow,
    receiver: Receiver,
    project: str,
    tmp_path: Path,
) -> None:
    await start_ebbflow(ebbflow, tmp_path, receiver, "--dry-run")
    crash = f"{project}-crash"
    run_container(crash, "--network", "none", "--label", "ebbflow.heal.backoff=1", cmd=CRASH_LOOP)
    (replica,) = run_replicas(run_container, f"{project}-web", 1)
    await asyncio.sleep(1)
    docker_cli("kill", replica)
    await until(lambda: len(healing_rows(ebbflow.state)) == 2, 20)
    before = {name: state_of(name) for name in (crash, replica)}
    await asyncio.sleep(3)
    for name in (crash, replica):
        after = state_of(name)
        assert after["Running"] is False and after == before[name]
        assert docker_cli("inspect", "--format", "{{.RestartCount}}", name) == "0"
    assert sorted(
        (action, container) for _, action, container, _ in healing_rows(ebbflow.state)
    ) == [
        ("restart", crash),
        ("restart", replica),
    ]
    assert ebbflow.logs().count("dry run: would restart") == 2
    await until(lambda: len(alerts(receiver.bodies.get("/hook", []))) >= 2, 10)
    await asyncio.sleep(0.5)
    sent = [a for a in alerts(receiver.bodies["/hook"]) if a[2]["service"].startswith(project)]
    assert sorted(labels["dry_run"] for _, _, labels in sent) == ["true", "true"], sent


async def test_a_service_with_an_invalid_policy_is_left_alone_when_it_dies(
    run_container: Callable[..., str],
    ebbflow: Ebbflow,
    receiver: Receiver,
    project: str,
    tmp_path: Path,
) -> None:
    await start_ebbflow(ebbflow, tmp_path, receiver)
    name = f"{project}-bad-1"
    run_container(
        name, "--network", "none",
        "--label", f"ebbflow.service={project}-bad", "--label", "aliyun.scale=2",
        "--label", "ebbflow.scale.cooldown=soon",  # not a number: the policy is invalid
        "--label", "ebbflow.heal.backoff=1",
    )  # fmt: skip
    await until(lambda: ebbflow.metric("ebbflow_policy_valid", service=f"{project}-bad") == 0.0, 20)
    docker_cli("kill", name)
    await asyncio.sleep(12)  # past the heal backoff and the reconcile grace
    assert state_of(name)["Running"] is False
    assert docker_cli("ps", "-aq", "--filter", f"label=ebbflow.service={project}-bad").split() == [
        docker_cli("inspect", "--format", "{{.Id}}", name)[:12]
    ]
    assert healing_rows(ebbflow.state) == []
    assert state_rows(ebbflow.state, "SELECT * FROM decisions") == []
    assert f"container {name}: not healed: its service's policy is invalid" in ebbflow.logs()


async def test_a_pending_restart_survives_a_sigkill_and_happens_when_it_was_due(
    run_container: Callable[..., str],
    ebbflow: Ebbflow,
    receiver: Receiver,
    project: str,
    tmp_path: Path,
) -> None:
    await start_ebbflow(ebbflow, tmp_path, receiver)
    name = f"{project}-loop-1"
    run_container(
        name, "--network", "none",
        "--label", f"ebbflow.service={project}-loop", "--label", "aliyun.scale=1",
        "--label", "ebbflow.heal.backoff=20",
    )  # fmt: skip
    await asyncio.sleep(1)
    docker_cli("kill", name)
    await until(
        lambda: f"container {name}: exited with code 137; restart in 20s" in ebbflow.logs(), 10
    )
    finished = parse_docker_time(str(state_of(name)["FinishedAt"]))
    ebbflow.kill()  # SIGKILL in the middle of the backoff
    await asyncio.sleep(2)
    assert state_of(name)["Running"] is False
    await start_ebbflow(ebbflow, tmp_path, receiver)
    await until(lambda: state_of(name)["Running"] is True, 30)
    restarted = parse_docker_time(str(state_of(name)["StartedAt"]))
    assert abs(restarted - (finished + 20)) < 2.0, restarted - finished  # when it was due
    assert "found at start" in ebbflow.logs()
    assert [
        (action, container, ok) for _, action, container, ok in healing_rows(ebbflow.state)
    ] == [("restart", name, 1)]


async def test_a_paused_service_is_left_alone_until_resumed(
    run_container: Callable[..., str],
    ebbflow: Ebbflow,
    receiver: Receiver,
    project: str,
    tmp_path: Path,
) -> None:
    await start_ebbflow(ebbflow, tmp_path, receiver)
    service = f"{project}-held"
    first, _ = run_replicas(run_container, service, 2)
    await asyncio.sleep(1)

    def control(verb: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "ebbflow", verb, service, "--state", str(ebbflow.state)],
            check=True, capture_output=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip

    control("pause")
    await until(lambda: f"service {service} paused: no actions until resumed" in ebbflow.logs(), 10)
    # the gauge follows within one telemetry cycle of the log line
    await until(lambda: ebbflow.metric("ebbflow_service_paused", service=service) == 1.0, 10)
    docker_cli("kill", first)
    await asyncio.sleep(12)  # past the heal backoff (1 s) and the reconcile grace (10 s)
    assert state_of(first)["Running"] is False
    assert f"container {first}: exited with code 137; not healed: its service is paused" in (
        ebbflow.logs()
    )
    assert healing_rows(ebbflow.state) == []
    control("resume")
    await until(
        lambda: (
            len(docker_cli("ps", "-q", "--filter", f"label=ebbflow.service={service}").split()) == 2
        ),
        40,
    )  # the desired count is kept again
    assert f"service {service} resumed" in ebbflow.logs()
