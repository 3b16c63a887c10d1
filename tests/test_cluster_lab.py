"""A Swarm service over the three-node lab, scaled on all of its replicas: an agent per
node remote-writes its own engine's containers, and the decider (acting through the
Swarm, holding the Swarm lease) decides on the three replicas of three nodes. The same
service seen by one agent only (on the idle node) is decided differently."""

from __future__ import annotations

import http.server
import json
import threading
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
    assert lab.spec_replicas(name) == 3

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
    wait_for("the Swarm's spec scaled", lambda: lab.spec_replicas(name) == to, 30)
    outcome = state_rows(whole, "SELECT outcome FROM decisions ORDER BY id LIMIT 1")
    assert outcome == [("ok",)]


class Hooks(http.server.BaseHTTPRequestHandler):
    """Webhook bodies (Alertmanager's JSON), kept in `Hooks.bodies`."""

    bodies: list[dict[str, object]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        Hooks.bodies.append(json.loads(self.rfile.read(min(length, 1_000_000))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def alerts(name: str) -> list[dict[str, object]]:
    return [
        alert
        for body in Hooks.bodies
        for alert in body.get("alerts", [])  # type: ignore[attr-defined]
        if alert["labels"]["alertname"] == name  # type: ignore[index]
    ]


def slot_nodes(service: str, via: str = "n2") -> dict[int, str]:
    """The node of each running task, by slot, as the manager `via` tells."""
    out = lab.node(via).docker(
        "service", "ps", service, "--filter", "desired-state=running",
        "--format", "{{.Name}} {{.Node}} {{.CurrentState}}",
    )  # fmt: skip
    return {
        int(name.rsplit(".", 1)[1]): node
        for name, node, state in (line.split(maxsplit=2) for line in out.splitlines())
        if state.startswith("Running")
    }


def test_the_acting_deciders_node_is_lost_and_actions_resume_from_another(
    tmp_path: Path,
) -> None:
    """Three replicas, one per node; slot 1's burns (a third of the service's capacity:
    no action due). The engine under the acting decider, and under slot 1, stops: its
    agent's samples stop, Swarm moves the task, the other decider takes the lease within
    its bound, the node alert fires, and nothing scales in on the missing samples. Then a
    real load asks for more, and the other decider scales out."""
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    name = f"loss-{RUN_ID}"
    # min 5 (not POLICY's 10): a third busy is 33 %, but while five ebbflow processes start
    # on the two cores the busy loop got a quarter of its limit over one 3 s window (CI:
    # 9 %, a scale-in); missing samples read as idle would still be 0 % and caught
    policy = {**POLICY, "ebbflow.scale.cooldown": "5", "ebbflow.scale.window": "3",
              "ebbflow.scale.min": "5"}  # fmt: skip
    labels = [arg for k, v in policy.items() for arg in ("--label", f"{k}={v}")]
    burn = 'while :; do if [ -f "/ctl/slot-$SLOT" ]; then :; else sleep 0.2; fi; done'
    lab.node("n2").docker(
        "service", "create", "--detach", "--name", name, "--no-resolve-image",
        "--network", "host", "--replicas", "3", "--limit-cpu", "0.5",
        "--stop-grace-period", "1s", "--env", "SLOT={{.Task.Slot}}",
        "--mount", f"type=bind,src={ctl},dst=/ctl",
        "--label", f"{TEST_LABEL}={RUN_ID}", "--container-label", f"{TEST_LABEL}={RUN_ID}",
        *labels, lab.IMAGE, "sh", "-c", burn,
    )  # fmt: skip
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    Hooks.bodies = []
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    procs: list[Ebbflow] = []
    lost: lab.Node | None = None
    try:
        lab.wait_until("a replica on each node",
                       lambda: tuple(sorted(slot_nodes(name).values())) == lab.NODES,
                       90)  # fmt: skip
        (ctl / "slot-1").touch()
        lost = lab.node(slot_nodes(name)[1])
        other = next(n for n in lab.NODE_LIST if n is not lost)
        receivers = {"first": free_port(), "second": free_port()}

        def decider(node: lab.Node, tag: str) -> Ebbflow:
            # its own node's engine first: the one its lease and actions go through
            nodes = {node.name: node.host} | {n.name: n.host for n in lab.NODE_LIST}
            config = tmp_path / f"{tag}.yaml"
            config.write_text(json.dumps({
                "role": "decider", "docker": {"nodes": nodes, "timeout": 3},
                "inputs": {"remote_write": {"listen": f"127.0.0.1:{receivers[tag]}"}},
                "actuators": ["swarm"], "lease": {"backend": "swarm", "ttl": 6},
                "outputs": {"prometheus": {}, "webhook": {
                    "targets": [{"url": f"http://127.0.0.1:{hooks.server_port}/{tag}"}],
                    "group_wait": 0.1}},
            }))  # fmt: skip
            (tmp_path / tag).mkdir()
            # one lease name for both: they compete for it
            proc = Ebbflow(tmp_path / tag, tmp_path / tag / "state.db", free_port(), name)
            proc.start("--role", "decider", "--config", str(config))
            procs.append(proc)
            return proc

        first = decider(lost, "first")
        wait_for("the first decider holding the lease",
                 lambda: first.metric("ebbflow_leader") == 1.0, 60, first.assert_alive)  # fmt: skip
        second = decider(other, "second")
        for n in lab.NODE_LIST:  # an agent per node, writing to both deciders
            (tmp_path / f"agent-{n.name}").mkdir()
            config = tmp_path / f"agent-{n.name}.yaml"
            push = {"flush_interval": 0.5, "sender": n.name}
            config.write_text(json.dumps({
                "role": "agent",
                "inputs": {"containers": {}, "node": False, "probes": False, "scrape": False},
                "outputs": {"prometheus": {}} | {
                    section: {"url": f"http://127.0.0.1:{receivers[tag]}/api/v1/write", **push}
                    for section, tag in (("remote_write", "first"),
                                         ("remote_write/second", "second"))
                },
            }))  # fmt: skip
            agent = Ebbflow(tmp_path / f"agent-{n.name}", tmp_path / "unused.db", free_port())
            agent.start("--config", str(config), env={"DOCKER_HOST": n.host})
            procs.append(agent)
        wait_for("the first decider seeing all three replicas",
                 lambda: first.metric("ebbflow_service_replicas_unseen", service=name) == 0.0
                 and first.metric("ebbflow_service_replicas", service=name) == 3.0,
                 60, first.assert_alive)  # fmt: skip
        time.sleep(8)  # a third of the capacity busy: nothing to do
        made = state_rows(first.state, "SELECT from_replicas, to_replicas, origin, reason, "
                                       "outcome, inputs FROM decisions")  # fmt: skip
        assert made == [], made
        assert second.metric("ebbflow_leader") == 0.0

        began = time.monotonic()
        lab.engine_stop(lost)
        wait_for("the second decider holding the lease",
                 lambda: second.metric("ebbflow_leader") == 1.0, 45,
                 second.assert_alive)  # fmt: skip
        took = time.monotonic() - began
        wait_for(f"the node alert for {lost.name}, and its drain",
                 lambda: any(a["labels"]["node"] == lost.name  # type: ignore[index]
                             for a in alerts("EbbflowNodeUnhealthy"))
                 and any(a["labels"]["node"] == lost.name  # type: ignore[index]
                         for a in alerts("EbbflowNodeDrained")), 30)  # fmt: skip
        lab.wait_until("slot 1 running again on another node",
                       lambda: slot_nodes(name, other.name).get(1) not in (None, lost.name),
                       90)  # fmt: skip
        time.sleep(10)  # the moved replica's samples arrive; still a third busy
        rows = state_rows(second.state, "SELECT from_replicas, to_replicas FROM decisions")
        rows += state_rows(first.state, "SELECT from_replicas, to_replicas FROM decisions")
        assert all(to >= was for was, to in rows), rows  # no scale-in on missing samples

        (ctl / "slot-2").touch()  # two thirds busy: the second decider scales out
        wait_for("the Swarm's spec scaled to 4",
                 lambda: lab.spec_replicas(name, other.name) == 4, 60,
                 second.assert_alive)  # fmt: skip
        made = state_rows(second.state, "SELECT from_replicas, to_replicas, outcome, inputs "
                                        "FROM decisions")  # fmt: skip
        moves = [(was, to, outcome) for was, to, outcome, _ in made]
        # the scale-out, by the new holder; before it at most a count restored to the 3
        # the Swarm keeps (the stabilisation's held maximum), never a scale-in
        assert moves[-1] == (3, 4, "ok") and all(to >= was for was, to, _ in moves), made
        assert all(outcome == "ok" and to <= 3 for was, to, outcome in moves[:-1]), made
        print(f"lease handed over {took:.1f}s after the engine stop began")
        # the bound: the engine's stop (its containers first, ~3 s), a new raft leader when
        # the lost node led the raft (11.6 s measured alone; about 25 s in one loaded CI
        # run, where this took 35.1 s), then ttl and one renewal interval
        assert took <= 5 + 30 + 6 + 6 / 6, took
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()
        hooks.shutdown()
        if lost is not None:
            lab.engine_up(lost)
            lab.swarm_up()
            # ebbflow drained the lost node (its migration); the lab's nodes start active
            for n in lab.NODE_LIST:
                lab.node("n1").docker("node", "update", "--availability", "active", n.name)
        lab.node("n1").docker("service", "rm", name, check=False)
