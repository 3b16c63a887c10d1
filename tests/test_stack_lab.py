"""ebbflow deployed from its own image, by its own stack file, on the three-node lab: an
agent on every node (`mode: global`) and two deciders (one consumer group), all in
containers. A Swarm service under load is scaled out through them, then in when the load
stops. Nothing runs ebbflow on the host: the image is built here (scripts/ebbflow-image)
and loaded into each node's engine; the only stand-in is Kafka, librdkafka's mock cluster,
reached from the nodes' namespaces through tests/tcp_relay.py."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import lab
from tests.conftest import RUN_ID, TEST_LABEL
from tests.ebbflow_process import wait_for
from tests.kafka_mock import MockCluster

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("lab_nodes")]

ROOT = Path(__file__).resolve().parent.parent
IMAGE = f"ebbflow:lab-{RUN_ID}"
STACK = f"ebf{RUN_ID}"
TOPIC = f"stack-{RUN_ID}"
SERVICE = f"stacked-{RUN_ID}"  # the loaded Swarm service scaled through the stack
PARTITIONS = 6
BURN = 'while :; do if [ -f "/ctl/load" ]; then :; else sleep 0.2; fi; done'
POLICY = {
    "ebbflow.scale.metric": "cpu",
    "ebbflow.scale.max": "50",  # percent of its CPU limit, averaged over the ready replicas
    "ebbflow.scale.min": "10",
    "ebbflow.scale.min_replicas": "1",
    "ebbflow.scale.max_replicas": "2",  # two half cores burning: the lab shares 2 cores
    "ebbflow.scale.window": "3",
    "ebbflow.scale.cooldown": "10",
}


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """ebbflow's image, built on n1's engine and copied to the others (no registry)."""
    n1 = lab.node("n1")
    subprocess.run([str(ROOT / "scripts" / "ebbflow-image"), IMAGE], check=True, timeout=600,
                   env={**os.environ, "DOCKER_HOST": n1.host})  # fmt: skip
    for other in lab.NODE_LIST[1:]:
        save = subprocess.Popen(["docker", "-H", n1.host, "save", IMAGE], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", other.host, "load", "-q"], stdin=save.stdout,
                       check=True, timeout=300, capture_output=True)  # fmt: skip
        assert save.wait(60) == 0
    try:
        yield IMAGE
    finally:
        for n in lab.NODE_LIST:
            n.docker("rmi", "-f", IMAGE, check=False)


@pytest.fixture
def kafka() -> Iterator[str]:
    """The mock cluster on the root namespace's loopback, and a relay in each node's
    namespace, so `127.0.0.1:PORT` (the address the broker advertises) reaches it from
    every node's host-network containers."""
    with MockCluster() as cluster:
        cluster.create_topic(TOPIC, PARTITIONS)
        port = cluster.bootstrap.rpartition(":")[2]
        relay = [sys.executable, str(ROOT / "tests" / "tcp_relay.py")]
        gateway = f"{lab.GATEWAY}:{port}"
        procs = [subprocess.Popen([*relay, gateway, cluster.bootstrap])]
        procs += [
            subprocess.Popen(["nsenter", f"--net={n.netns}", *relay, f"127.0.0.1:{port}", gateway])
            for n in lab.NODE_LIST
        ]
        try:
            yield cluster.bootstrap
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


def stack_tasks(service: str) -> list[tuple[str, str]]:
    """(node, state) of each task of the stack's service that should run."""
    out = lab.node("n1").docker(
        "service", "ps", f"{STACK}_{service}", "--filter", "desired-state=running",
        "--format", "{{.Node}} {{.CurrentState}}",
    )  # fmt: skip
    return sorted((line.split()[0], line.split()[1]) for line in out.splitlines())


def task_history() -> str:
    """Every task of the stack, its state and error, and the images on each node: what a
    stack that does not come up says about why."""
    out = [lab.node("n1").docker(
        "service", "ps", "--no-trunc", f"{STACK}_agent", f"{STACK}_decider",
        "--format", "{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}",
        check=False,
    )]  # fmt: skip
    for n in lab.NODE_LIST:
        images = n.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False)
        out.append(f"{n.name} images: {' '.join(images.split())}")
    return "\n".join(out)


def stack_containers() -> dict[str, str]:
    """Container name → health, for the stack's containers on every node."""
    health = {}
    for n in lab.NODE_LIST:
        ids = n.docker("ps", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}")
        for cid in ids.split():
            name, status = n.docker("inspect", "--format",
                                    "{{.Name}} {{.State.Health.Status}}", cid).split()  # fmt: skip
            health[f"{n.name}{name}"] = status
    return health


# A decision taken under a partition the decider then lost for a moment (a rebalance on a
# loaded machine: generation 1, then 3) is refused unattempted (scaler/runner.py `_stale`);
# the one decided again after it acts.
REFUSED = "not done: ownership changed since the decision"


def decisions() -> list[tuple[str, int, int, str, str, str]]:
    """(node, from, to, owner, outcome, detail) of every decision in the deciders' state
    files, read from their volumes on each node, oldest first."""
    rows = []
    for n in lab.NODE_LIST:
        mount = n.docker("volume", "inspect", "--format", "{{.Mountpoint}}",
                         f"{STACK}_decider-state", check=False)  # fmt: skip
        db = Path(mount) / "ebbflow.db" if mount else None
        if db is None or not db.exists():
            continue
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows += [
                (ts, n.name, *row)
                for ts, *row in conn.execute(
                    "SELECT ts, from_replicas, to_replicas, owner, outcome, "
                    "coalesce(detail, '') FROM decisions WHERE service LIKE ? ORDER BY id",
                    (f"%{SERVICE}",),
                )
            ]
    return [row[1:] for row in sorted(rows)]


def acted(rows: list[tuple[str, int, int, str, str, str]]) -> list[tuple[str, int, int, str, str]]:
    """The decisions that were carried out: every other one was refused unattempted because
    its decider's ownership changed since (asserted here), the safety that keeps two
    owners of one rebalance from both acting."""
    refused = [r for r in rows if r[4] == "refused" and r[5].startswith(REFUSED)]
    assert len(refused) <= 2, rows  # a rebalance or two on a loaded machine, not a habit
    return [r[:5] for r in rows if r not in refused]


def deploy(image: str, bootstrap: str, tmp_path: Path) -> None:
    """deploy/stack.yml as it ships, plus what the lab needs: each node's engine at its own
    socket, the deciders scoped to this test, a short session timeout."""
    engines = {n.name: n.host for n in lab.NODE_LIST}
    override = tmp_path / "lab.yml"
    override.write_text(json.dumps({
        "version": "3.8",
        "services": {
            "agent": {"environment": {"EBBFLOW_OUTPUTS__KAFKA__FLUSH_INTERVAL": "0.5"}},
            "decider": {
                "environment": {
                    "EBBFLOW_SCOPE__LABELS": json.dumps({TEST_LABEL: RUN_ID}),
                    "EBBFLOW_INPUTS__KAFKA__SESSION_TIMEOUT": "4",
                    "EBBFLOW_INPUTS__KAFKA__HEARTBEAT_INTERVAL": "0.5",
                },
                "volumes": [{"type": "bind", "source": str(lab.RUN), "target": str(lab.RUN)}],
            },
        },
    }))  # fmt: skip
    env = {
        **os.environ,
        "KAFKA": bootstrap,
        "EBBFLOW_IMAGE": image,
        "EBBFLOW_TOPIC": TOPIC,
        "EBBFLOW_ENGINES": json.dumps(engines),
        "DOCKER_SOCKET": f"{lab.RUN}/{{{{.Node.Hostname}}}}/docker.sock",
    }
    subprocess.run(
        ["docker", "-H", lab.node("n1").host, "stack", "deploy", "--detach=true",
         "--resolve-image", "never", "-c", str(ROOT / "deploy" / "stack.yml"),
         "-c", str(override), STACK],
        env=env, check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip


def remove_stack() -> None:
    n1 = lab.node("n1")
    n1.docker("stack", "rm", STACK, check=False)
    lab.wait_until("the stack's containers gone", lambda: not stack_containers(), 90)
    for n in lab.NODE_LIST:
        n.docker("volume", "rm", "-f", f"{STACK}_decider-state", check=False)


def test_ebbflow_deployed_from_its_image_scales_a_service_out_and_in(
    image: str, kafka: str, tmp_path: Path
) -> None:
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    (ctl / "load").touch()
    labels = [arg for k, v in POLICY.items() for arg in ("--label", f"{k}={v}")]
    n1 = lab.node("n1")
    n1.docker(
        "service", "create", "--detach", "--name", SERVICE, "--no-resolve-image",
        "--network", "host", "--replicas", "1", "--limit-cpu", "0.5",
        "--stop-grace-period", "1s", "--mount", f"type=bind,src={ctl},dst=/ctl",
        "--label", f"{TEST_LABEL}={RUN_ID}", "--container-label", f"{TEST_LABEL}={RUN_ID}",
        *labels, lab.IMAGE, "sh", "-c", BURN,
    )  # fmt: skip
    try:
        began = time.monotonic()
        deploy(image, kafka, tmp_path)
        # Three agents, one per node; two deciders on two managers; all healthy by their
        # image's HEALTHCHECK (ebbflow healthcheck on the config's own address).
        try:
            wait_for("an agent on each node and two deciders",
                     lambda: [n for n, s in stack_tasks("agent") if s == "Running"]
                     == list(lab.NODES)
                     and len({n for n, s in stack_tasks("decider") if s == "Running"}) == 2,
                     180)  # fmt: skip
        except AssertionError as err:  # say why: each task's state and error, each node's images
            raise AssertionError(f"{err}\n{task_history()}") from None
        wait_for("every ebbflow container healthy",
                 lambda: list(stack_containers().values()).count("healthy") == 5, 120)  # fmt: skip

        # The load: one replica at its whole half core, above the policy's 50 %.
        healthy = time.monotonic() - began
        wait_for("a scale-out through the deployed deciders",
                 lambda: lab.spec_replicas(SERVICE) > 1, 120)  # fmt: skip
        scaled_out = time.monotonic() - began
        out = acted(decisions())
        assert out, "the Swarm was scaled, but no decider's state file has the decision"
        _node, was, to, owner, outcome = out[0]
        assert (was, outcome) == (1, "ok") and to > 1, out
        assert owner, out  # the audit row names the decider that owned the service

        # No load: back to the minimum, by the same owner.
        (ctl / "load").unlink()
        unloaded = time.monotonic()
        wait_for("a scale-in to the minimum", lambda: lab.spec_replicas(SERVICE) == 1, 180)
        print(
            f"stack healthy {healthy:.0f} s after deploy; scaled out at {scaled_out:.0f} s; "
            f"back to 1 {time.monotonic() - unloaded:.0f} s after the load stopped; {out}"
        )
        out = acted(decisions())
        assert [(f, t) for _, f, t, _, _ in out][-1][1] == 1, out
        # One chain of decisions, each from where the last left the service: a second
        # decider acting on the same need would show as a repeated step (1→2, 1→2). The
        # owner may change between them: a consumer group that rebalances (a decider slow
        # past the 4 s session timeout on a loaded machine) hands the partition over.
        steps = [(f, t) for _, f, t, _, _ in out]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(steps)), out
        assert len({o for _, _, _, o, _ in out}) <= 2, out
        assert {outcome for *_, outcome in out} == {"ok"}, out
        assert max(t for _, _, t, _, _ in out) <= 2, out
        for name, health in stack_containers().items():
            assert health == "healthy", (name, health)
    finally:
        n1.docker("service", "rm", SERVICE, check=False)
        logs = n1.docker("service", "logs", "--raw", f"{STACK}_decider", check=False,
                         timeout=30)  # fmt: skip
        remove_stack()
    assert "Traceback" not in logs, logs[-4000:]
