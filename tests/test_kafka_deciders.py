"""The Kafka path end to end on the real engine: an agent (UDP in, Kafka out) and two
deciders in one consumer group over six services, as processes. Each service is decided
by exactly one decider, whose audit row names it; a SIGKILLed decider's services pass to
the other within the group's session timeout plus one window; across the whole test no
need gets two decisions and no count passes its max. The Kafka peer is librdkafka's mock
cluster (no broker can be installed here)."""

from __future__ import annotations

import itertools
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from ebbflow.partitions import partition_for
from ebbflow.state import StoredDecision

from .conftest import docker_cli, free_port
from .ebbflow_process import Ebbflow, wait_for
from .kafka_mock import MockCluster
from .test_e2e import decisions, labelled

pytestmark = pytest.mark.integration

PARTITIONS = 6
SESSION_TIMEOUT = 4.0
# The mock cluster's coordinator holds a rebalance after a member's session timed out for
# session.timeout.ms - 1 s more, waiting for members that may yet rejoin (librdkafka's
# src/rdkafka_mock_cgrp.c, rd_kafka_mock_cgrp_rebalance); a real broker goes on once the
# remaining members rejoined. That wait is the mock's, added to the bound below.
MOCK_REBALANCE_DELAY = SESSION_TIMEOUT - 1.0
WINDOW = 2.0
MAX_REPLICAS = 3


def six_services() -> list[str]:
    """Three names the range assignor gives the first member (partitions 0-2) and three it
    gives the second (3-5), so both deciders own services."""
    low = [n for n in (f"w{i}" for i in range(100)) if partition_for(n.encode(), 6) < 3]
    high = [n for n in (f"w{i}" for i in range(100)) if partition_for(n.encode(), 6) >= 3]
    return low[:3] + high[:3]


def decider_config(path: Path, bootstrap: str, topic: str) -> Path:
    path.write_text(
        "inputs:\n"
        f"  kafka: {{bootstrap_servers: '{bootstrap}', topic: {topic}, group_id: {topic}-g,\n"
        f"          session_timeout: {SESSION_TIMEOUT:g}, heartbeat_interval: 0.5}}\n"
        "lease: {backend: kafka}\n"
    )
    return path


def counts(project: str) -> Counter[str]:
    """Running replicas per compose service of the project: one `docker ps` for all six."""
    out = docker_cli("ps", "--format", '{{.Label "com.docker.compose.service"}}',
                     "--filter", f"label=com.docker.compose.project={project}")  # fmt: skip
    return Counter(out.split())


def owned(decider: Ebbflow) -> float | None:
    return decider.metric("ebbflow_kafka_consumer_partitions_owned")


def test_two_deciders_share_six_services_and_a_killed_ones_pass_to_the_other(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    services = six_services()
    with MockCluster() as cluster:
        topic = f"ebbflow-{project}"
        cluster.create_topic(topic, PARTITIONS)
        for name in services:
            run_container(
                f"{project}_{name}_1",
                "--init",
                "--network",
                "none",
                *labelled(
                    project,
                    name,
                    {
                        "ebbflow.scale.metric": "queue_depth",
                        "ebbflow.scale.target": "10",
                        "ebbflow.scale.max_replicas": str(MAX_REPLICAS),
                        "ebbflow.scale.window": f"{WINDOW:g}",
                        "ebbflow.scale.stabilization": "2",
                        "ebbflow.scale.cooldown": "2",
                    },
                ),
            )
        udp = free_port()
        agent_config = tmp_path / "agent.yaml"
        agent_config.write_text(
            f"inputs:\n  udp: {{listen: '127.0.0.1:{udp}'}}\n"
            f"outputs:\n  kafka: {{bootstrap_servers: '{cluster.bootstrap}', topic: {topic},"
            " flush_interval: 0.2}\n"
        )
        procs: dict[str, Ebbflow] = {}
        for who in ("agent", "a", "b"):
            (tmp_path / who).mkdir()
            procs[who] = Ebbflow(tmp_path / who, tmp_path / who / "state.db", free_port())
        agent, a, b = procs["agent"], procs["a"], procs["b"]
        depth = {"value": 30}
        most = {name: 1 for name in services}
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def push() -> None:
            """One datagram per service per poll (bounded by wait_for's deadline), and the
            highest replica count each service ever reached."""
            for proc in (agent, a, b):
                if proc.proc is not None and proc.proc.returncode is None:
                    proc.assert_alive()
            now = counts(project)
            for name in services:
                line = f"queue,service={project}/{name} depth={depth['value']}i"
                sender.sendto(line.encode(), ("127.0.0.1", udp))
                most[name] = max(most[name], now[name])

        try:
            config = decider_config(tmp_path / "decider.yaml", cluster.bootstrap, topic)
            a.start("--role", "decider", "--config", str(config))
            wait_for("decider a owning all six partitions", lambda: owned(a) == 6, 60,
                     a.assert_alive)  # fmt: skip
            b.start("--role", "decider", "--config", str(config))
            wait_for("the partitions split 3/3",
                     lambda: owned(a) == 3 and owned(b) == 3, 60, b.assert_alive)  # fmt: skip
            ready = a.readyz()
            assert ready is not None and ready[0] == 200, ready
            agent.start("--role", "agent", "--config", str(agent_config))

            # 30 waiting at 10 per replica: every service to 3, each by one decider.
            wait_for("every service at 3",
                     lambda: all(counts(project)[n] == 3 for n in services), 120, push)  # fmt: skip
            by = {who: {n: decisions(p.state, project, n) for n in services}
                  for who, p in (("a", a), ("b", b))}  # fmt: skip
            owners = {n: [who for who in by if by[who][n]] for n in services}
            assert all(len(who) == 1 for who in owners.values()), owners
            mine = {who: {n for n in services if owners[n] == [who]} for who in ("a", "b")}
            assert len(mine["a"]) == 3 and len(mine["b"]) == 3, mine
            for who, names in mine.items():
                for name in names:
                    rows = by[who][name]
                    assert rows[0].owner and f"of {topic}" in rows[0].owner, rows[0].owner
            lag = a.metric("ebbflow_kafka_consumer_lag")
            assert lag is not None and lag >= 0
            assert agent.metric("ebbflow_role", role="agent") == 1.0
            sender_age = a.metric("ebbflow_kafka_consumer_sender_age_seconds")
            assert sender_age is not None and sender_age < 10

            # a dies without a word; the load goes away. b scales its own services in at
            # once, and a's once the group hands them over.
            victim = "a" if services[0] in mine["a"] else "b"
            survivor = b if victim == "a" else a
            procs[victim].kill()
            killed_at = time.time()
            depth["value"] = 0
            while owned(survivor) != 6:  # polled closely: this is the hand-over's measure
                assert time.time() - killed_at < 60, "no hand-over in 60 s"
                push()
                time.sleep(0.1)
            handed_over = time.time() - killed_at
            wait_for("every service back at 1",
                     lambda: all(counts(project)[n] == 1 for n in services),
                     120, push)  # fmt: skip
        finally:
            sender.close()
            for proc in procs.values():
                if proc.proc is not None and proc.proc.returncode is None:
                    proc.stop()

    # Ownership passed within the session timeout plus one window (plus the mock's wait).
    print(f"hand-over {handed_over:.1f}s after the SIGKILL")
    assert handed_over <= SESSION_TIMEOUT + MOCK_REBALANCE_DELAY + WINDOW, handed_over
    survivor_rows = {n: decisions(survivor.state, project, n) for n in services}
    for name in mine[victim]:
        taken = [d for d in survivor_rows[name] if d.timestamp > killed_at]
        assert taken and taken[0].from_replicas == 3, (name, survivor_rows[name])
        # and its first decision on them follows within a window of fresh samples (and the
        # stabilisation, which spans one more)
        assert taken[0].timestamp - killed_at <= handed_over + 2 * WINDOW + 2.0
    # No need decided twice: per service, the decisions of both deciders form one chain.
    for name in services:
        rows: list[StoredDecision] = sorted(
            decisions(a.state, project, name) + decisions(b.state, project, name),
            key=lambda d: d.timestamp,
        )
        acted = [d for d in rows if d.outcome == "ok" and d.origin == "policy"]
        for before, after in itertools.pairwise(acted):
            assert after.from_replicas == before.to_replicas, (name, acted)
    assert all(count <= MAX_REPLICAS for count in most.values()), most
