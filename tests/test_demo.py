"""`scripts/demo` on an engine where another labelled project runs: the demo scales its own
service 1→3→1 and leaves the other project exactly as it was."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import docker_cli, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_leaves_another_labelled_project_untouched(
    run_container: Callable[..., str], project: str
) -> None:
    other = f"{project}other"
    names = [f"{other}_web_1", f"{other}_job_1"]
    for name, service in zip(names, ("web", "job"), strict=True):
        run_container(
            name, "--network", "none",
            "--label", f"com.docker.compose.project={other}",
            "--label", f"com.docker.compose.service={service}",
            "--label", "com.docker.compose.container-number=1",
            # Unscoped, ebbflow would bring web to 3 and restart job when it is killed.
            "--label", "aliyun.scale=3",
            "--label", "aliyun.auto_scaling.max_cpu=40",
            "--label", "ebbflow.heal.backoff=1",
        )  # fmt: skip
    docker_cli("kill", names[1])  # exited: a full ebbflow would heal it
    before = docker_cli("inspect", *names)
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "EBBFLOW_DEMO_PORT": str(port := free_port())},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "replicas=3" in done.stdout and "demo done" in done.stderr
    # The demo prints its page's address and serves it while it runs.
    assert f"status page: http://127.0.0.1:{port}/" in done.stderr
    assert f"status page http://127.0.0.1:{port}/ shows compose:ebbdemo/web: 3 replicas" in (
        done.stdout
    )
    assert docker_cli("inspect", *names) == before  # not one field changed
    project_members = docker_cli(
        "ps", "-aq", "--filter", f"label=com.docker.compose.project={other}"
    ).split()
    assert len(project_members) == 2  # nothing added
