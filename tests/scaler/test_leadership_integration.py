"""Two `ebbflow run` on one engine and scope, each with its own state file: one decides,
the other stands by; SIGKILL of the leader mid-load and the standby takes over within
15 s, keeping the cooldown, and nothing is decided twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.ebbflow_process import Ebbflow, wait_for
from tests.test_e2e import decisions, replicas, start_burner

pytestmark = pytest.mark.integration

COOLDOWN = 8


def instance(tmp_path: Path, name: str) -> Ebbflow:
    home = tmp_path / name
    home.mkdir()
    return Ebbflow(home, home / "state.db", free_port(), lease=f"compete-{tmp_path.name}")


def test_one_instance_decides_and_a_standby_takes_over_a_killed_leader(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.mkdir()
    start_burner(run_container, project, flag, cooldown=COOLDOWN)
    first, second = instance(tmp_path, "first"), instance(tmp_path, "second")
    seen: list[int] = []
    try:
        first.start()
        wait_for("a leader", lambda: first.metric("ebbflow_leader") == 1.0, 30, first.assert_alive)
        second.start()
        wait_for(
            "a standby",
            lambda: second.metric("ebbflow_leader") == 0.0 and "standing by for" in second.logs(),
            30,
            second.assert_alive,
        )

        def observe() -> None:
            seen.append(replicas(project))

        (flag / "burn").touch()
        wait_for("the leader's scale-out to 2", lambda: replicas(project) == 2, 90, observe)
        wait_for("its outcome", lambda: decisions(first.state, project)[-1].outcome == "ok", 20)
        first.kill()  # mid-load: a third replica is still wanted
        killed = time.monotonic()
        wait_for("the takeover", lambda: second.metric("ebbflow_leader") == 1.0, 20, observe)
        assert time.monotonic() - killed < 15
        wait_for("3 replicas", lambda: replicas(project) == 3, 90, observe)
        (flag / "burn").unlink()
        wait_for("back to 1", lambda: replicas(project) == 1, 120, observe)
        assert second.stop() == 0
    finally:
        for proc in (first, second):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()
    by_first = [(d.from_replicas, d.to_replicas) for d in decisions(first.state, project)]
    by_second = decisions(second.state, project)
    assert by_first == [(1, 2)]
    assert (by_second[0].from_replicas, by_second[0].to_replicas) == (2, 3)
    assert by_second[-1].to_replicas == 1
    assert all(d.origin == "policy" and d.outcome == "ok" for d in by_second)
    # The takeover kept the leader's cooldown: its first decision came a full cooldown
    # after the leader's (measured from the replica the leader started).
    assert by_second[0].timestamp - decisions(first.state, project)[0].timestamp >= COOLDOWN
    assert max(seen) == 3  # never above max_instances
    assert "became leader" in second.logs() and "Traceback" not in second.logs()
