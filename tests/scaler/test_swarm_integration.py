"""Docker Swarm, single node, on the test engine: scaling a labelled service out and in
under CPU load, restarting a service whose probe fails by forced updates with backoff,
updates that never overwrite someone else's, and dry runs that change nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebbflow.docker_api import DockerHandle
from ebbflow.model import Decision, ServiceKey
from ebbflow.nodes import Nodes
from ebbflow.scaler.swarm import SwarmActuator
from tests.conftest import RUN_ID, TEST_LABEL, docker_cli, free_port
from tests.ebbflow_process import Ebbflow, state_rows
from tests.receiver import until

pytestmark = pytest.mark.integration

BUSY_WHILE_FLAGGED = "while :; do if [ -f /ctl/busy ]; then :; else sleep 0.2; fi; done"


@pytest.fixture(scope="module")
def swarm(engine: str) -> Iterator[str]:
    """A single-node Swarm on the test engine; left again at the end if we made it."""
    state = docker_cli("info", "--format", "{{.Swarm.LocalNodeState}}")
    made = state != "active"
    if made:
        docker_cli("swarm", "init", "--advertise-addr", "127.0.0.1")
    yield engine
    services = docker_cli("service", "ls", "-q", "--filter", f"label={TEST_LABEL}={RUN_ID}")
    if services:
        docker_cli("service", "rm", *services.split(), check=False)
    if made:
        docker_cli("swarm", "leave", "--force", check=False)


def create_service(image: str, name: str, *args: str, cmd: str = "sleep 600") -> None:
    docker_cli(
        "service",
        "create",
        "--detach",
        "--name",
        name,
        "--no-resolve-image",
        "--network",
        "host",
        "--label",
        f"{TEST_LABEL}={RUN_ID}",
        "--container-label",
        f"{TEST_LABEL}={RUN_ID}",
        "--stop-grace-period",
        "1s",
        *args,
        image,
        "sh",
        "-c",
        cmd,
    )


def spec(name: str) -> dict[str, object]:
    return dict(json.loads(docker_cli("service", "inspect", "--format", "{{json .Spec}}", name)))


def replicas(name: str) -> int:
    return int(
        docker_cli("service", "inspect", "--format", "{{.Spec.Mode.Replicated.Replicas}}", name)
    )


def running_tasks(name: str) -> int:
    out = docker_cli("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}")
    return len(out.split())


def force_updates(name: str) -> int:
    template = spec(name)["TaskTemplate"]
    assert isinstance(template, dict)
    return int(template.get("ForceUpdate") or 0)


def scaling_labels(ctl: Path) -> list[str]:
    labels = {
        "ebbflow.scale.metric": "cpu",
        "ebbflow.scale.max": "50",
        "ebbflow.scale.min": "10",
        "ebbflow.scale.max_replicas": "2",
        "ebbflow.scale.window": "2",
        "ebbflow.scale.cooldown": "2",
    }
    args = [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]
    return [*args, "--mount", f"type=bind,src={ctl},dst=/ctl"]


def failing_probe_labels() -> list[str]:
    labels = {
        "aliyun.probe.url": f"http://container:{free_port()}/",  # nothing listens there
        "ebbflow.health.interval": "1",
        "ebbflow.health.failure_threshold": "2",
        "ebbflow.heal.backoff": "2",
    }
    return [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]


async def test_a_labelled_service_scales_out_and_in_under_load(
    swarm: str, ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    name = f"{project}-cpu"
    create_service(swarm, name, *scaling_labels(ctl), cmd=BUSY_WHILE_FLAGGED)
    await until(lambda: running_tasks(name) == 1, 30)
    ebbflow.start()
    await until(lambda: ebbflow.metric("ebbflow_policy_valid", service=name) == 1, 30)
    (ctl / "busy").touch()  # the one replica spins a core: ~100 % > max 50
    await until(lambda: replicas(name) == 2, 60)
    await until(lambda: running_tasks(name) == 2, 30)
    (ctl / "busy").unlink()  # both idle: < min 10
    await until(lambda: replicas(name) == 1, 60)
    await until(lambda: running_tasks(name) == 1, 30)
    decided = state_rows(
        ebbflow.state,
        "SELECT from_replicas, to_replicas, outcome, detail FROM decisions ORDER BY id",
    )
    assert decided == [(1, 2, "ok", "replicas 1 → 2"), (2, 1, "ok", "replicas 2 → 1")]


async def test_a_failing_probe_restarts_the_service_by_forced_updates_with_backoff(
    swarm: str, ebbflow: Ebbflow, project: str
) -> None:
    name = f"{project}-sick"
    create_service(swarm, name, *failing_probe_labels())
    ebbflow.start()
    restarts = "SELECT ts, action, ok FROM healing WHERE action = 'restart' ORDER BY id"
    await until(lambda: len(state_rows(ebbflow.state, restarts)) >= 2, 90)
    (first, _, ok1), (second, _, ok2) = state_rows(ebbflow.state, restarts)[:2]
    assert ok1 == ok2 == 1
    assert force_updates(name) >= 2
    # Between the two: the new task's start, 2 failed probes, and a backoff of 2 × 2 s.
    assert float(second) - float(first) >= 4
    tasks = docker_cli("service", "ps", "--format", "{{.DesiredState}}", name).split()
    assert tasks.count("Shutdown") >= 2  # the forced updates replaced the tasks


async def test_an_update_never_overwrites_one_made_in_between(swarm: str, project: str) -> None:
    name = f"{project}-race"
    create_service(swarm, name)
    docker = DockerHandle()
    actuator = SwarmActuator(Nodes([docker]), time.time)
    calls = 0

    def scale_to_3(s: dict[str, object]) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:  # someone else updates the service between our read and our write
            subprocess.run(
                ["docker", "service", "update", "--detach", "--label-add", "owner=ops", name],
                check=True,
                capture_output=True,
            )
        mode = s["Mode"]
        assert isinstance(mode, dict)
        mode["Replicated"]["Replicas"] = 3
        return "to 3"

    try:
        assert await actuator.update(name, scale_to_3) == "to 3"
    finally:
        await docker.close()
    assert calls == 2  # refused as out of sequence, read again, then done
    current = spec(name)
    assert replicas(name) == 3 and current["Labels"]["owner"] == "ops"  # type: ignore[index]


async def test_a_scale_in_on_fewer_replicas_than_the_spec_keeps_is_refused(
    swarm: str, project: str
) -> None:
    """The decision saw 2 replicas where the Swarm keeps 3 (one lost with its node, not yet
    moved): a scale-in on part of the service is refused, the spec untouched."""
    name = f"{project}-partial"
    create_service(swarm, name, "--replicas", "3")
    docker = DockerHandle()
    actuator = SwarmActuator(Nodes([docker]), time.time)
    key = ServiceKey("swarm", name)
    try:
        with pytest.raises(RuntimeError, match="the spec has 3 replicas, the decision saw 2"):
            await actuator.apply(Decision(key, 2, 1, "idle", time.time()))
        assert replicas(name) == 3
        done = await actuator.apply(Decision(key, 3, 2, "idle", time.time()))
        assert done.detail == "replicas 3 → 2" and replicas(name) == 2
    finally:
        await docker.close()


async def test_dry_run_on_swarm_changes_nothing(
    swarm: str, ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    (ctl / "busy").touch()
    loaded, sick = f"{project}-dry-cpu", f"{project}-dry-sick"
    create_service(swarm, loaded, *scaling_labels(ctl), cmd=BUSY_WHILE_FLAGGED)
    create_service(swarm, sick, *failing_probe_labels())
    await until(lambda: running_tasks(loaded) == 1 and running_tasks(sick) == 1, 30)
    versions = {
        n: docker_cli("service", "inspect", "--format", "{{.Version.Index}}", n)
        for n in (loaded, sick)
    }
    ebbflow.start("--dry-run")
    await until(
        lambda: (
            state_rows(ebbflow.state, "SELECT 1 FROM decisions WHERE dry_run = 1")
            and state_rows(ebbflow.state, "SELECT 1 FROM healing WHERE dry_run = 1")
        ),
        60,
    )
    await asyncio.sleep(2)
    for n, version in versions.items():
        assert docker_cli("service", "inspect", "--format", "{{.Version.Index}}", n) == version
    assert replicas(loaded) == 1 and force_updates(sick) == 0
    assert "dry run: would restart" in ebbflow.logs()


def node_spec() -> dict[str, object]:
    node_id = docker_cli("info", "--format", "{{.Swarm.NodeID}}")
    return dict(json.loads(docker_cli("node", "inspect", "--format", "{{json .Spec}}", node_id)))


def pressure_config(tmp_path: Path, memory_percent: float) -> str:
    """Default inputs (the node input among them) with a memory limit on this machine."""
    path = tmp_path / f"pressure-{memory_percent:g}.yaml"
    pressure = {"memory_percent": memory_percent, "for_seconds": 0}
    path.write_text(json.dumps({"docker": {"pressure": pressure}}))
    return str(path)


async def test_a_node_under_pressure_is_drained_and_made_active_when_it_recovers(
    swarm: str, ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    name = f"{project}-moved"
    create_service(swarm, name, "--label", "ebbflow.heal.budget=1")
    await until(lambda: running_tasks(name) == 1, 60)
    try:
        ebbflow.start("--config", pressure_config(tmp_path, 0.1))  # always passed
        await until(lambda: node_spec()["Availability"] == "drain", 30)
        labels = node_spec()["Labels"]
        assert isinstance(labels, dict)
        assert labels["ebbflow.drained"].startswith("under pressure: memory percent")
        await until(lambda: running_tasks(name) == 0, 30)  # Swarm moved its task off it
        assert ebbflow.stop() == 0
        ebbflow.start("--config", pressure_config(tmp_path, 100))  # never passed
        await until(lambda: node_spec()["Availability"] == "active", 30)
        assert "ebbflow.drained" not in (node_spec().get("Labels") or {})
        await until(lambda: running_tasks(name) == 1, 60)
    finally:
        node_id = docker_cli("info", "--format", "{{.Swarm.NodeID}}")
        docker_cli("node", "update", "--availability", "active", node_id, check=False)
        docker_cli("node", "update", "--label-rm", "ebbflow.drained", node_id, check=False)
    steps = state_rows(
        ebbflow.state,
        "SELECT action, ok, dry_run FROM healing WHERE action IN ('drain', 'activate') ORDER BY id",
    )
    assert steps == [("drain", 1, 0), ("activate", 1, 0)]


async def test_dry_run_does_not_drain(
    swarm: str, ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    ebbflow.start("--config", pressure_config(tmp_path, 0.1), "--dry-run")
    await until(
        lambda: (
            state_rows(ebbflow.state, "SELECT dry_run FROM healing WHERE action = 'drain'")
            == [(1,)]
        ),
        30,
    )
    await asyncio.sleep(2)
    spec_now = node_spec()
    assert spec_now["Availability"] == "active"
    assert "ebbflow.drained" not in (spec_now.get("Labels") or {})
