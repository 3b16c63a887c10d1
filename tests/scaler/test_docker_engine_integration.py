"""Scaling on the real engine: clones keep the service's config; nothing else is touched."""

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ebbflow.docker_api import DockerHandle
from ebbflow.model import Decision, ServiceKey
from ebbflow.nodes import Nodes
from ebbflow.scaler.docker_engine import DockerEngineActuator

from ..conftest import compose_containers

pytestmark = pytest.mark.integration


def inspect(name: str) -> dict:
    out = subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


async def test_clone_fidelity_and_scale_in_newest_first(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("hi")
    volume = f"{project}-vol"
    run_container(
        f"{project}_web_1",
        "--network",
        "none",
        "--label",
        f"com.docker.compose.project={project}",
        "--label",
        "com.docker.compose.service=web",
        "--label",
        "com.docker.compose.container-number=1",
        "--label",
        "team=payments",
        "-e",
        "GREETING=hello",
        "-e",
        "MODE=prod",
        "-w",
        "/data",
        "-v",
        f"{data}:/data:ro",
        "--mount",
        f"type=volume,source={volume},target=/cache",
        "--restart",
        "on-failure:3",
        "--cpus",
        "0.25",
        "--memory",
        "48m",
        "--stop-signal",
        "SIGKILL",
        cmd=("sleep", "600"),
    )
    # A neighbour in the same project but another service, and one with no labels at all.
    run_container(
        f"{project}_db_1",
        "--network",
        "none",
        "--label",
        f"com.docker.compose.project={project}",
        "--label",
        "com.docker.compose.service=db",
    )
    run_container(f"{project}-stray", "--network", "none")
    service = ServiceKey("compose", "web", project)
    docker = DockerHandle()
    actuator = DockerEngineActuator(Nodes([docker]), time.time, stop_timeout=1)
    try:
        result = await actuator.apply(Decision(service, 1, 3, "test", time.time()))
        assert result.ok, result.detail
        assert compose_containers(project, "web") == [
            f"{project}_web_1",
            f"{project}_web_2",
            f"{project}_web_3",
        ]
        template, clone = inspect(f"{project}_web_1"), inspect(f"{project}_web_3")
        for key in ("Image", "Cmd", "Env", "WorkingDir", "StopSignal"):
            assert clone["Config"][key] == template["Config"][key], key
        for key, value in template["Config"]["Labels"].items():
            if key != "com.docker.compose.container-number":
                assert clone["Config"]["Labels"][key] == value, key
        assert clone["Config"]["Labels"]["com.docker.compose.container-number"] == "3"
        for key in ("Binds", "Mounts", "NetworkMode", "RestartPolicy", "NanoCpus", "Memory"):
            assert clone["HostConfig"][key] == template["HostConfig"][key], key
        mounts = {
            m["Destination"]: (m["Type"], m.get("Name") or m["Source"], m["RW"])
            for m in clone["Mounts"]
        }
        assert mounts == {"/data": ("bind", str(data), False), "/cache": ("volume", volume, True)}
        seen = subprocess.run(
            ["docker", "exec", f"{project}_web_3", "cat", "/data/hello"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        assert seen == "hi"  # the bind mount is really there
        neighbours = (inspect(f"{project}_db_1"), inspect(f"{project}-stray"))

        result = await actuator.apply(Decision(service, 3, 1, "test", time.time()))
        assert result.ok, result.detail
        assert result.containers == (f"{project}_web_3", f"{project}_web_2")  # newest first
        assert compose_containers(project, "web") == [f"{project}_web_1"]
        for before in neighbours:
            after = inspect(before["Name"].lstrip("/"))
            assert (after["Id"], after["State"]["Running"]) == (before["Id"], True)
        # the freed numbers are reused
        await actuator.apply(Decision(service, 1, 2, "test", time.time()))
        assert compose_containers(project, "web") == [f"{project}_web_1", f"{project}_web_2"]
    finally:
        await docker.close()
        subprocess.run(
            ["docker", "rm", "-f", *compose_containers(project, "web")], capture_output=True
        )
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


async def test_nothing_to_clone_is_a_failed_action_not_a_crash(engine: str, project: str) -> None:
    docker = DockerHandle()
    try:
        actuator = DockerEngineActuator(Nodes([docker]), time.time)
        result = await actuator.apply(
            Decision(ServiceKey("compose", "ghost", project), 0, 1, "test", time.time())
        )
        assert not result.ok and "no running replica" in result.detail
    finally:
        await docker.close()
