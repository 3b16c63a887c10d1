"""Scope on a real engine: of two loaded projects, ebbflow acts on the one in its scope
only, and still monitors the other."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import compose_containers, docker_cli
from tests.ebbflow_process import Ebbflow, state_rows, wait_for
from tests.test_e2e import BURN, labelled

pytestmark = pytest.mark.integration


def burner(run_container: Callable[..., str], project: str, flag: Path) -> None:
    run_container(
        f"{project}_burn_1", "--init", "--network", "none", "--cpus", "0.5",
        "-v", f"{flag}:/flag:ro",
        *labelled(project, "burn", {
            "aliyun.auto_scaling.max_cpu": "40",
            "aliyun.auto_scaling.min_cpu": "10",
            "aliyun.auto_scaling.max_instances": "2",
            "ebbflow.scale.cooldown": "2",
            "ebbflow.scale.window": "2",
            "ebbflow.heal.backoff": "1",
        }),
        cmd=("sh", "-c", BURN),
    )  # fmt: skip


def inspect(name: str) -> dict[str, object]:
    found: list[dict[str, object]] = json.loads(docker_cli("inspect", name))
    return found[0]


def test_only_the_project_in_scope_is_scaled_and_healed_the_other_is_only_watched(
    run_container: Callable[..., str], tmp_path: Path, ebbflow: Ebbflow
) -> None:
    mine, theirs = f"ebbmine{uuid.uuid4().hex[:5]}", f"ebbtheirs{uuid.uuid4().hex[:5]}"
    flag = tmp_path / "flag"
    flag.mkdir()
    (flag / "burn").touch()  # load on both
    burner(run_container, mine, flag)
    burner(run_container, theirs, flag)
    before = inspect(f"{theirs}_burn_1")
    ebbflow.start("--scope-project", mine)
    wait_for(
        "my project at 2 replicas",
        lambda: len(compose_containers(mine, "burn")) == 2,
        90,
        ebbflow.assert_alive,
    )
    assert f'name="{theirs}_burn_1"' in ebbflow.metrics()  # watched all the same
    assert ebbflow.metric("ebbflow_service_in_scope", service=f"{theirs}/burn") == 0.0
    assert ebbflow.metric("ebbflow_service_in_scope", service=f"{mine}/burn") == 1.0
    assert inspect(f"{theirs}_burn_1") == before  # untouched: not one field changed

    # A replica of each dies: mine is healed, theirs stays as its operator left it.
    docker_cli("kill", f"{mine}_burn_1")
    docker_cli("kill", f"{theirs}_burn_1")
    killed = inspect(f"{theirs}_burn_1")
    wait_for(
        "my replica restarted",
        lambda: inspect(f"{mine}_burn_1")["State"]["Running"] is True,  # type: ignore[index]
        60,
        ebbflow.assert_alive,
    )
    time.sleep(5)  # ebbflow's heal backoff for theirs would be 1 s: plenty of time to act
    assert inspect(f"{theirs}_burn_1") == killed
    assert compose_containers(theirs, "burn") == []  # still stopped, still one container
    assert ebbflow.stop() == 0
    decided = state_rows(ebbflow.state, "SELECT service FROM decisions")
    assert decided and all(mine in str(row[0]) for row in decided)
    healed = state_rows(ebbflow.state, "SELECT service FROM healing")
    assert healed and all(mine in str(row[0]) for row in healed)
    assert "acting on projects " + mine in ebbflow.logs()
