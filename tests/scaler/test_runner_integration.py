"""At start, on a real engine: an unfinished two-hour-old 4→1 is expired, not carried out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ebbflow.model import Decision, ServiceKey
from ebbflow.state import DecisionStore
from tests.conftest import docker_cli
from tests.ebbflow_process import Ebbflow, state_rows, wait_for

pytestmark = pytest.mark.integration


def test_a_stale_scale_in_left_by_a_crash_removes_nothing(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    service = f"{project}-web"
    names = [f"{service}-{n}" for n in range(1, 5)]
    for name in names:
        run_container(
            name, "--network", "none",
            "--label", f"ebbflow.service={service}", "--label", "aliyun.scale=4",
        )  # fmt: skip
    store = DecisionStore(ebbflow.state)
    store.record(  # what a SIGKILL two hours ago left behind: decided, never carried out
        Decision(ServiceKey("label", service), 4, 1, f"{service}: 4→1", time.time() - 7200)
    )
    store.close()
    ebbflow.start()
    wait_for(
        "the stale decision expired",
        lambda: state_rows(ebbflow.state, "SELECT outcome FROM decisions") == [("expired",)],
        30,
        ebbflow.assert_alive,
    )
    time.sleep(5)  # anything it would do, it would have done by now
    running = docker_cli(
        "ps", "--format", "{{.Names}}", "--filter", f"label=ebbflow.service={service}"
    )
    assert sorted(running.split()) == names  # all four still there
    assert ebbflow.stop() == 0
    assert "a decision cut off by a stop expired (a scale-in is not finished" in ebbflow.logs()
