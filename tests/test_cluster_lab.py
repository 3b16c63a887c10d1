"""A Swarm service over the three-node lab, scaled on all of its replicas: an agent per
node remote-writes its own engine's containers, and the decider (acting through the
Swarm, holding the Swarm lease) decides on the three replicas of three nodes. The same
service seen by one agent only (on the idle node) is decided differently."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import lab
from tests.conftest import RUN_ID, TEST_LABEL, free_port
from tests.ebbflow_process import Ebbflow, state_rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("lab_nodes")]

SERVICE = f"whole-{RUN_ID}"
BURN = 'while :; do if [ -f "/ctl/$NODE" ]; then :; else sleep 0.2; fi; done'
POLICY = {
    "ebbflow.scale.metric": "cpu",
    "ebbflow.scale.max": "50",  # percent of its CPU limit, averaged over the ready replicas
    "ebbflow.scale.min": "10",
    "ebbflow.scale.min_replicas": "1",
    "ebbflow.scale.max_replicas": "4",
    "ebbflow.scale.window": "3",
    "ebbflow.scale.cooldown": "60",
}


def tasks(service: str) -> list[str]:
    out = lab.node("n1").docker(
        "service", "ps", service, "--filter", "desired-state=running",
        "--format", "{{.Node}} {{.CurrentState}}",
    )  # fmt: skip
    return sorted(line.split()[0] for line in out.splitlines() if "Running" in line)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Three replicas, one per node; the replicas of n1 and n2 burn their half core."""
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    name = SERVICE
    labels = [arg for k, v in POLICY.items() for arg in ("--label", f"{k}={v}")]
    lab.node("n1").docker(
        "service", "create", "--detach", "--name", name, "--no-resolve-image",
        "--network", "host", "--replicas", "3", "--replicas-max-per-node", "1",
        "--limit-cpu", "0.5", "--stop-grace-period", "1s",
        "--env", "NODE={{.Node.Hostname}}", "--mount", f"type=bind,src={ctl},dst=/ctl",
        "--label", f"{TEST_LABEL}={RUN_ID}", "--container-label", f"{TEST_LABEL}={RUN_ID}",
        *labels, lab.IMAGE, "sh", "-c", BURN,
    )  # fmt: skip
    try:
        lab.wait_until("a replica on each node", lambda: tasks(name) == ["n1", "n2", "n3"], 90)
        (ctl / "n1").touch()
        (ctl / "n2").touch()
        yield name, ctl
    finally:
        lab.node("n1").docker("service", "rm", name, check=False)


def spec_replicas(name: str) -> int:
    spec = json.loads(lab.node("n1").docker("service", "inspect", "--format", "{{json .Spec}}",
                                            name))  # fmt: skip
    return int(spec["Mode"]["Replicated"]["Replicas"])


def first_decision(state: Path) -> tuple[int, int, dict[str, float]] | None:
    rows = state_rows(state, "SELECT from_replicas, to_replicas, inputs FROM decisions ORDER BY id")
    if not rows:
        return None
    was, to, inputs = rows[0]
    return int(was), int(to), json.loads(inputs)


def run_cluster(
    tmp_path: Path, agents_on: tuple[str, ...], *decider_args: str, hold: float = 0.0
) -> tuple[Path, dict[str, float | None]]:
    """A decider and the agents, until the decider's first decision (or for `hold`
    seconds); returns its state file and what its /metrics said about the service."""
    tmp_path.mkdir()
    receiver = free_port()
    nodes = {n.name: n.host for n in lab.NODE_LIST}
    decider_config = tmp_path / "decider.yaml"
    decider_config.write_text(json.dumps({
        "role": "decider",
        "docker": {"nodes": nodes, "timeout": 5},
        "inputs": {"remote_write": {"listen": f"127.0.0.1:{receiver}"}},
        "actuators": ["swarm"],
        "lease": {"backend": "swarm", "ttl": 6},
    }))  # fmt: skip

    def agent_config(node: str) -> Path:
        path = tmp_path / f"agent-{node}.yaml"
        path.write_text(json.dumps({
            "role": "agent",
            "inputs": {"containers": {}, "node": False, "probes": False, "scrape": False},
            "outputs": {"prometheus": {}, "remote_write": {
                "url": f"http://127.0.0.1:{receiver}/api/v1/write", "flush_interval": 0.5,
                "sender": node}},
        }))  # fmt: skip
        return path

    (tmp_path / "decider").mkdir()
    decider = Ebbflow(tmp_path / "decider", tmp_path / "decider" / "state.db", free_port())
    agents = []
    try:
        decider.start("--role", "decider", "--config", str(decider_config), *decider_args)
        for name in agents_on:
            (tmp_path / name).mkdir()
            agent = Ebbflow(tmp_path / name, tmp_path / name / "unused.db", free_port())
            agent.start("--config", str(agent_config(name)),
                        env={"DOCKER_HOST": lab.node(name).host})  # fmt: skip
            agents.append(agent)
        if hold:
            time.sleep(hold)
        else:
            wait_for("a decision", lambda: first_decision(decider.state) is not None, 90,
                     decider.assert_alive)  # fmt: skip
        for agent in agents:
            agent.assert_alive()
        seen = {
            name: decider.metric(name, service=SERVICE)
            for name in (
                "ebbflow_service_replicas_unseen",
                "ebbflow_service_replicas",
                "ebbflow_service_owned",
            )
        }
        seen |= {
            f"age {node}": decider.metric("ebbflow_remote_write_sender_age_seconds", sender=node)
            for node in lab.NODES
        }
        assert "Traceback" not in decider.logs() + "".join(a.logs() for a in agents)
        return decider.state, seen
    finally:
        for proc in (*agents, decider):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()


def test_a_service_over_three_nodes_is_scaled_on_all_three_replicas(
    service: tuple[str, Path], tmp_path: Path
) -> None:
    name, _ = service
    # One agent, on the idle node: the decider sees one idle replica of three. It would
    # scale in on it; the two it has no samples of hold it (their load is unknown).
    partial, seen = run_cluster(tmp_path / "one", ("n3",), "--dry-run", hold=30)
    assert first_decision(partial) is None
    assert seen == {
        "ebbflow_service_replicas_unseen": 2.0,
        "ebbflow_service_replicas": 3.0,
        "ebbflow_service_owned": 1.0,  # a dry run holds no lease: it may decide on all
        "age n1": None,  # no agent: no sender
        "age n2": None,
        "age n3": pytest.approx(0.5, abs=2.5),  # writes every 0.5 s
    }
    assert spec_replicas(name) == 3

    # An agent on every node: three ready replicas on three nodes, two of them burning.
    whole, seen = run_cluster(tmp_path / "all", ("n1", "n2", "n3"))
    decided = first_decision(whole)
    assert decided is not None
    was, to, inputs = decided
    assert (was, inputs["ready"], inputs["ready_nodes"]) == (3, 3, 3), inputs
    assert to > was and inputs["cpu_avg"] > 50  # (100 + 100 + 0) / 3 % of the limit
    assert seen["ebbflow_service_replicas_unseen"] == 0.0
    assert seen["ebbflow_service_owned"] == 1.0  # the decider holds the Swarm lease
    assert all(seen[f"age {node}"] is not None for node in lab.NODES), seen
    wait_for("the Swarm's spec scaled", lambda: spec_replicas(name) == to, 30)
    outcome = state_rows(whole, "SELECT outcome FROM decisions ORDER BY id LIMIT 1")
    assert outcome == [("ok",)]
