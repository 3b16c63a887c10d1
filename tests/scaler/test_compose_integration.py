"""ebbflow beside Debian's real docker-compose (1.29): `docker-compose down` retires a
service cleanly, and `up` brings it back under management."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IMAGE, RUN_ID, TEST_LABEL, compose_containers
from tests.ebbflow_process import Ebbflow, wait_for

pytestmark = pytest.mark.integration


def compose_file(directory: Path, command: str = "sleep 600") -> Path:
    path = directory / "docker-compose.yml"
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
      aliyun.scale: "2"
      ebbflow.heal.backoff: "1"
"""
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
    config.write_text("reconcile: {grace: 2}\n")
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
    time.sleep(20)  # ten reconcile grace periods
    assert compose_containers(project, "web") == []
    logs = ebbflow.logs()
    assert logs.count(f"service {project}/web retired") == 1, logs
    assert (
        "ERROR" not in logs
        and "action failed" not in logs
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
