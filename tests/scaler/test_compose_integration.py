"""ebbflow beside Debian's real docker-compose (1.29): `docker-compose down` retires a
service cleanly and `up` brings it back under management; a redeploy with a changed
command keeps the decided count on the new version only, and starts no cooldown; an `up`
that keeps removing what ebbflow adds is a fight ebbflow stops."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    IMAGE,
    RUN_ID,
    TEST_LABEL,
    compose_containers,
    docker_cli,
    free_port,
    running_commands,
)
from tests.ebbflow_process import Ebbflow, state_rows, wait_for
from tests.receiver import Receiver, alerts, until

pytestmark = pytest.mark.integration


SCALE_2 = {"aliyun.scale": "2", "ebbflow.heal.backoff": "1"}


def compose_file(
    directory: Path, command: str = "sleep 600", labels: dict[str, str] | None = None
) -> Path:
    path = directory / "docker-compose.yml"
    lines = "".join(
        f'      {key}: "{value}"\n'
        for key, value in (SCALE_2 if labels is None else labels).items()
    )
    path.write_text(
        f"""version: "2.4"
services:
  web:
    image: {IMAGE}
    command: {command}
    network_mode: none
    stop_signal: SIGKILL
    labels:
      {TEST_LABEL}: "{RUN_ID}"
{lines}"""
    )
    return path


@pytest.fixture
def compose(engine: str, project: str, tmp_path: Path) -> Iterator[list[str]]:
    """`docker-compose -p PROJECT -f FILE`; the project is taken down at the end."""
    command = ["docker-compose", "-p", project, "-f", str(compose_file(tmp_path))]
    yield command
    subprocess.run([*command, "down", "-t", "1"], capture_output=True, timeout=120)


def run(command: list[str], *args: str) -> None:
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_compose_down_retires_the_service_and_up_brings_it_back(
    compose: list[str], project: str, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    config = tmp_path / "ebbflow.yaml"
    config.write_text("reconcile: {grace: 2, redeploy_window: 5}\n")
    ebbflow.start("--config", str(config))
    run(compose, "up", "-d")  # compose starts 1; aliyun.scale says 2
    wait_for(
        "ebbflow's second replica",
        lambda: len(compose_containers(project, "web")) == 2,
        60,
        ebbflow.assert_alive,
    )
    run(compose, "down", "-t", "1")
    assert compose_containers(project, "web") == []
    time.sleep(10)  # five reconcile grace periods
    assert compose_containers(project, "web") == []
    logs = ebbflow.logs()
    assert logs.count(f"service {project}/web retired") == 1, logs
    assert (
        "ERROR" not in logs
        and "action failed" not in logs
        and "action refused" not in logs
        and "WARNING" not in logs.split("retired")[-1]
    )
    run(compose, "up", "-d")
    wait_for(
        "managed again, at 2",
        lambda: len(compose_containers(project, "web")) == 2,
        60,
        ebbflow.assert_alive,
    )
    assert "a replica started again; managed again" in ebbflow.logs()
    assert ebbflow.stop() == 0


def web_commands(project: str) -> dict[str, str]:
    """Each running replica of the project's web service → its command."""
    return running_commands(
        f"label=com.docker.compose.project={project}", "label=com.docker.compose.service=web"
    )


def decisions(state: Path, project: str) -> list[tuple[object, ...]]:
    return state_rows(
        state,
        "SELECT from_replicas, to_replicas, origin, outcome FROM decisions"
        f" WHERE service = 'compose:{project}/web' ORDER BY id",
    )


QUEUE_POLICY = {
    "ebbflow.scale.metric": "queue_depth",
    "ebbflow.scale.target": "10",
    "ebbflow.scale.max_replicas": "5",
    "ebbflow.scale.window": "2",
    "ebbflow.scale.cooldown": "20",
}


def test_a_redeploy_keeps_the_decided_count_on_the_new_command_only_and_no_cooldown(
    engine: str, project: str, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    udp_port = free_port()
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        "reconcile: {grace: 2, redeploy_window: 5}\n"
        f"inputs:\n  containers: {{}}\n  udp:\n    listen: 127.0.0.1:{udp_port}\n"
    )
    command = [
        "docker-compose",
        "-p",
        project,
        "-f",
        str(compose_file(tmp_path, "sleep 600", QUEUE_POLICY)),
    ]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def push(depth: int) -> Callable[[], None]:
        def send() -> None:  # one datagram per poll, bounded by wait_for's deadline
            ebbflow.assert_alive()
            line = f"queue,service={project}/web depth={depth}i"
            sender.sendto(line.encode(), ("127.0.0.1", udp_port))

        return send

    try:
        run(command, "up", "-d")
        ebbflow.start("--config", str(config))
        wait_for(
            "3 replicas for a depth of 30",
            lambda: len(web_commands(project)) == 3,
            60,
            push(30),
        )
        scaled_at = time.monotonic()
        wait_for(
            "the scale-out's outcome",
            lambda: decisions(ebbflow.state, project) == [(1, 3, "policy", "ok")],
            10,
        )
        time.sleep(max(0.0, 22 - (time.monotonic() - scaled_at)))  # past its cooldown; no data
        assert len(web_commands(project)) == 3  # held without data (on_missing: hold)

        compose_file(tmp_path, "sleep 601", QUEUE_POLICY)  # the redeploy: a new command
        run(command, "up", "-d")
        deployed_at = time.monotonic()
        seen: list[dict[str, str]] = []

        def all_new() -> bool:
            seen.append(web_commands(project))
            return len(seen[-1]) == 3 and set(seen[-1].values()) == {"sleep 601"}

        wait_for("3 replicas of the new command", all_new, 30, ebbflow.assert_alive)
        took = time.monotonic() - deployed_at
        assert all("sleep 600" not in cmds.values() for cmds in seen), seen  # never mixed
        assert took < 2 + 5, took  # one grace period, plus the check interval and the clones
        logs = ebbflow.logs()
        assert "redeployed (configuration" in logs and "the desired count stays 3" in logs
        assert "manual scale-in" not in logs and "retired" not in logs
        back = [
            (1, 3, "policy", "ok"),
            (1, 3, "reconcile", "ok"),  # back to the decided count: no cooldown started
        ]
        wait_for("the reconcile's outcome", lambda: decisions(ebbflow.state, project) == back, 10)

        # A scale-out needed right away is not held by the redeploy's reconcile.
        wait_for(
            "5 replicas for a depth of 50",
            lambda: len(web_commands(project)) == 5,
            15,
            push(50),
        )
        wait_for(
            "the second scale-out's outcome",
            lambda: decisions(ebbflow.state, project)[-1] == (3, 5, "policy", "ok"),
            10,
        )
        assert set(web_commands(project).values()) == {"sleep 601"}
    finally:
        sender.close()
        subprocess.run([*command, "down", "-t", "1"], capture_output=True, timeout=120)
    assert ebbflow.stop() == 0


async def test_compose_removing_what_ebbflow_adds_twice_is_a_fight_ebbflow_stops(
    engine: str, project: str, ebbflow: Ebbflow, receiver: Receiver, tmp_path: Path
) -> None:
    """aliyun.scale 2 with a min of 2, and a compose file that counts 1: each `up -d`
    removes the replica ebbflow added. The second time, ebbflow pauses the service."""
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "reconcile": {"grace": 2, "redeploy_window": 3},
                "outputs": {"prometheus": {}, "webhook": receiver.webhook_output()},
            }
        )
    )
    labels = {**SCALE_2, "ebbflow.scale.min_replicas": "2"}
    command = ["docker-compose", "-p", project, "-f", str(compose_file(tmp_path, labels=labels))]

    def count() -> int:
        return len(compose_containers(project, "web"))

    try:
        await asyncio.to_thread(run, command, "up", "-d")
        ebbflow.start("--config", str(config))
        await until(lambda: count() == 2, 60)  # ebbflow adds the second
        await asyncio.to_thread(run, command, "up", "-d")  # compose takes it away
        assert count() == 1
        await until(lambda: count() == 2, 30)  # below its min: ebbflow restores it
        await asyncio.to_thread(run, command, "up", "-d")  # and again: a fight
        assert count() == 1
        await until(lambda: "stops re-adding replicas" in ebbflow.logs(), 15)
        await asyncio.sleep(12)  # four reconcile grace periods and the redeploy window
        assert count() == 1
        logs = ebbflow.logs()
        assert logs.count("stops re-adding replicas") == 1, logs
        assert logs.count("below its min_replicas 2") == 1, logs
        service = f"compose:{project}/web"
        assert ebbflow.metric("ebbflow_service_paused", service=service) == 1.0
        await until(
            lambda: (
                [
                    a[0]
                    for a in alerts(receiver.bodies.get("/hook", []))
                    if a[1] == "EbbflowServiceFight"
                ]
                == ["firing"]
            ),
            10,
        )
        assert decisions(ebbflow.state, project) == [
            (1, 2, "reconcile", "ok"),
            (1, 2, "reconcile", "ok"),
        ]
        # The operator settles it and resumes: the fight's alert resolves, and the
        # service is managed again (back to its min of 2).
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ebbflow", "resume", service, "--state", str(ebbflow.state)],
            check=True, capture_output=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        await until(
            lambda: (
                [
                    a[0]
                    for a in alerts(receiver.bodies.get("/hook", []))
                    if a[1] == "EbbflowServiceFight"
                ]
                == ["firing", "resolved"]
            ),
            15,
        )
        assert "resumed by the operator; the fight is over" in ebbflow.logs()
        await until(lambda: count() == 2, 30)
    finally:
        await asyncio.to_thread(
            subprocess.run, [*command, "down", "-t", "1"], capture_output=True, timeout=120
        )
    assert ebbflow.stop() == 0


def test_a_guest_with_a_service_s_compose_labels_is_never_its_template_nor_its_count(
    compose: list[str], project: str, ebbflow: Ebbflow, run_container: Callable[..., str]
) -> None:
    """A container started by hand with the compose labels of `web` and `aliyun.scale=4`,
    newer than compose's replica: ebbflow clones compose's replica, counts 2 without the
    guest, and never touches the guest."""
    run(compose, "up", "-d")  # compose's web_1, aliyun.scale 2
    guest = f"{project}_web_9"
    run_container(
        guest, "--network", "none",
        "--label", f"com.docker.compose.project={project}",
        "--label", "com.docker.compose.service=web",
        "--label", "aliyun.scale=4",
        cmd=("sleep", "602"),
    )  # fmt: skip
    before = docker_cli("inspect", guest)
    config = ebbflow.workdir / "ebbflow.yaml"
    config.write_text("reconcile: {grace: 2}\n")
    ebbflow.start("--config", str(config))
    wait_for(
        "ebbflow's second replica",
        lambda: len(compose_containers(project, "web")) == 3,
        60,
        ebbflow.assert_alive,
    )
    time.sleep(10)  # five grace periods: nothing more is added, nothing removed
    cmds = web_commands(project)
    assert sorted(cmds) == sorted([f"{project}_web_1", f"{project}_web_2", guest]), cmds
    assert cmds[f"{project}_web_2"] == "sleep 600"  # cloned from compose's, not the guest
    assert docker_cli("inspect", guest) == before  # untouched
    assert ebbflow.metric("ebbflow_service_replicas_desired", service=f"{project}/web") == 2.0
    wait_for(
        "the outcome",
        lambda: decisions(ebbflow.state, project) == [(1, 2, "reconcile", "ok")],
        10,
    )
    assert ebbflow.stop() == 0
