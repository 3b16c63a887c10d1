"""Agent and decider as two processes on the real engine (the path without Kafka): the
agent collects and remote-writes, the decider receives, decides and acts. Without the
agent's samples the decider decides nothing (missing data is never read as zero); with
them it scales the service out, and back in once the agent's samples return."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import free_port
from .ebbflow_process import Ebbflow, wait_for
from .test_e2e import decisions, replicas, start_burner

pytestmark = pytest.mark.integration


def test_a_decider_scales_on_what_its_agent_pushes_and_never_on_missing_data(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    flag.mkdir()
    (flag / "burn").touch()
    start_burner(run_container, project, flag, cooldown=5)
    receiver = free_port()
    (tmp_path / "decider").mkdir()
    (tmp_path / "agent").mkdir()
    decider_config = tmp_path / "decider.yaml"
    decider_config.write_text(f"inputs: {{remote_write: {{listen: '127.0.0.1:{receiver}'}}}}\n")
    agent_config = tmp_path / "agent.yaml"
    write = f"http://127.0.0.1:{receiver}/api/v1/write"
    agent_config.write_text(
        f"outputs:\n  remote_write: {{url: '{write}', flush_interval: 0.5}}\n  prometheus: {{}}\n"
    )
    state = tmp_path / "state.db"
    decider = Ebbflow(tmp_path / "decider", state, free_port())
    agent = Ebbflow(tmp_path / "agent", tmp_path / "agent" / "unused.db", free_port())
    try:
        decider.start("--role", "decider", "--config", str(decider_config))
        wait_for("the decider serving", lambda: decider.metric("ebbflow_role", role="decider")
                 == 1.0, 30, decider.assert_alive)  # fmt: skip
        time.sleep(12)  # the service burns; with no samples there is nothing to decide on
        assert decisions(state, project) == [] and replicas(project) == 1
        assert decider.metric("ebbflow_role", role="decider") == 1.0

        agent.start("--role", "agent", "--config", str(agent_config))
        wait_for("3 replicas, each action's outcome recorded",
                 lambda: replicas(project) == 3
                 and all(d.outcome for d in decisions(state, project)),
                 120, decider.assert_alive)  # fmt: skip
        made = decisions(state, project)
        assert [(d.from_replicas, d.to_replicas) for d in made[:2]] == [(1, 2), (2, 3)]
        assert all(d.outcome == "ok" for d in made), [d.detail for d in made]
        assert made[0].inputs["cpu_avg"] > 40  # from the agent's samples, remote-written
        assert agent.metric("ebbflow_role", role="agent") == 1.0
        assert not (tmp_path / "agent" / "unused.db").exists()  # an agent keeps no state

        agent.kill()  # its samples stop, and the load goes: only missing data remains
        (flag / "burn").unlink()
        time.sleep(12)  # window 3 s, cooldown 5 s: real idle samples would scale in by now
        assert len(decisions(state, project)) == 2 and replicas(project) == 3

        agent.start("--role", "agent", "--config", str(agent_config))
        wait_for("1 replica, each action's outcome recorded",
                 lambda: replicas(project) == 1
                 and all(d.outcome for d in decisions(state, project)),
                 120, decider.assert_alive)  # fmt: skip
        after = decisions(state, project)[2:]
        assert [(d.from_replicas, d.to_replicas) for d in after] == [(3, 2), (2, 1)]
        assert "Traceback" not in decider.logs() + agent.logs()
    finally:
        for proc in (agent, decider):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()
