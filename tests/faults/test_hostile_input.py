"""Hostile input next to a good service, on the real engine: labels of inf, a subnormal
and a newline in a key, datagrams of NaN and a 400-digit integer. The good service still
scales; every bad thing is a named error or an exact malformed count; nothing restarts."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiodocker
import pytest

from tests.conftest import IMAGE, RUN_ID, TEST_LABEL, compose_containers, free_port
from tests.ebbflow_process import Ebbflow, wait_for
from tests.test_e2e import labelled

pytestmark = [pytest.mark.integration, pytest.mark.faults]

FORGED = "2026-12-01T00:00:00 ERROR   ebbflow: all is well"


def create_through_the_api(name: str, labels: dict[str, str]) -> None:
    """The docker CLI refuses a label key with a newline; the engine's API takes it."""

    async def create() -> None:
        async with aiodocker.Docker() as docker:
            config = {
                "Image": IMAGE,
                "Cmd": ["sleep", "600"],
                "Labels": {TEST_LABEL: RUN_ID, **labels},
                "HostConfig": {"NetworkMode": "none"},
            }
            container = await docker.containers.create(config, name=name)
            await container.start()

    asyncio.run(create())


def test_hostile_labels_and_datagrams_cost_only_themselves(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    udp_port = free_port()
    config = tmp_path / "ebbflow.yaml"
    config.write_text(f"inputs:\n  containers: {{}}\n  udp:\n    listen: 127.0.0.1:{udp_port}\n")
    queue = {
        "ebbflow.scale.metric": "queue_depth",
        "ebbflow.scale.max_replicas": "3",
        "ebbflow.scale.window": "2",
    }
    run_container(
        f"{project}_worker_1", "--network", "none",
        *labelled(project, "worker", {**queue, "ebbflow.scale.target": "10"}),
    )  # fmt: skip
    run_container(
        f"{project}_inf_1", "--network", "none",
        *labelled(project, "inf", {**queue, "ebbflow.scale.target": "inf"}),
    )  # fmt: skip
    run_container(
        f"{project}_tiny_1", "--network", "none",
        *labelled(project, "tiny", {**queue, "ebbflow.scale.target": "1e-320"}),
    )  # fmt: skip
    forged_key = f"ebbflow.scale.bogus\n{FORGED}"
    create_through_the_api(
        f"{project}_forged_1",
        {
            "com.docker.compose.project": project,
            "com.docker.compose.service": "forged",
            "com.docker.compose.container-number": "1",
            forged_key: "1",
        },
    )
    ebbflow.start("--config", str(config))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wait_for(
        "the UDP input",
        lambda: ebbflow.metric("ebbflow_udp_datagrams_total") is not None,
        30,
        ebbflow.assert_alive,
    )
    for service in ("worker", "inf", "tiny"):  # hostile datagrams for every service
        for depth in ("nan", "1" * 400 + "i"):
            line = f"queue,service={project}/{service} depth={depth}"
            sender.sendto(line.encode(), ("127.0.0.1", udp_port))

    def push() -> None:  # one good datagram per poll, bounded by wait_for's deadline
        ebbflow.assert_alive()
        for service in ("worker", "inf", "tiny"):
            line = f"queue,service={project}/{service} depth=30i"
            sender.sendto(line.encode(), ("127.0.0.1", udp_port))

    try:
        wait_for("3 workers", lambda: len(compose_containers(project, "worker")) == 3, 60, push)
    finally:
        sender.close()
    assert ebbflow.metric("ebbflow_udp_malformed_total") == 6.0  # exactly the hostile lines
    for service in ("inf", "tiny", "forged"):
        assert ebbflow.metric("ebbflow_policy_valid", service=f"{project}/{service}") == 0.0
        assert len(compose_containers(project, service)) == 1  # left alone
    assert ebbflow.metric("ebbflow_policy_valid", service=f"{project}/worker") == 1.0
    restarts = re.findall(
        r"^ebbflow_component_restarts_total\{.*\} (\S+)$", ebbflow.metrics(), re.M
    )
    assert restarts and set(restarts) == {"0.0"}
    assert ebbflow.metric("ebbflow_ready") == 1.0
    status = ebbflow.readyz()
    assert status is not None and status[0] == 200, status

    policies = subprocess.run(
        [sys.executable, "-m", "ebbflow", "policies", "--json"],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert ebbflow.stop() == 0
    errors = {
        row["service"]: row["errors"]
        for row in __import__("json").loads(policies)
        if row["service"].startswith(f"compose:{project}/")
    }
    assert errors[f"compose:{project}/inf"] == [
        "ebbflow.scale.target: Input should be a finite number (got 'inf')"
    ]
    assert errors[f"compose:{project}/tiny"] == [
        "ebbflow.scale.target: is too small to compute with (a subnormal number) (got '1e-320')"
    ]
    assert errors[f"compose:{project}/forged"][0] == f"{forged_key}: unknown key"
    logs = ebbflow.logs()
    assert not any(line.startswith(FORGED) for line in logs.splitlines())
    assert "ebbflow.scale.bogus\\n" + FORGED in logs  # the key, escaped, on its own line
    assert "Traceback" not in logs
