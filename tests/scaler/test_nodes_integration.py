"""Two real engines as two nodes, through a real `ebbflow run`: a replica killed or removed
on the second node is brought back there; when the second engine stops, its containers
come up on the first, and what was left on it is removed when it returns; a dry run
changes nothing on either engine."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ebbflow.docker_api import DockerHandle
from ebbflow.model import Decision, ServiceKey
from ebbflow.nodes import Nodes
from ebbflow.scaler.docker_engine import DockerEngineActuator
from tests.conftest import RUN_ID, TEST_LABEL, docker_cli, remove_test_containers
from tests.ebbflow_process import Ebbflow
from tests.receiver import Receiver, alerts, until
from tests.scaler.test_healing_integration import healing_rows
from tests.second_engine import SecondEngine

pytestmark = pytest.mark.integration

FIRST = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@pytest.fixture(scope="module")
def second_engine(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondEngine]:
    node = SecondEngine(tmp_path_factory.mktemp("n2"), engine)
    node.start()
    yield node
    node.remove()


@pytest.fixture
def second(second_engine: SecondEngine) -> Iterator[SecondEngine]:
    """The second engine, running; each test's containers are removed from both after it."""
    second_engine.start()  # a no-op unless a test left it stopped
    yield second_engine
    second_engine.start()
    second_engine.remove_test_containers()
    remove_test_containers()


def replica_args(service: str, image: str, name: str) -> list[str]:
    labels = {
        TEST_LABEL: RUN_ID,
        "ebbflow.service": service,
        "aliyun.scale": "2",
        "ebbflow.heal.backoff": "1",
    }
    return [
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--stop-signal",
        "SIGKILL",
        *[arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")],
        image,
        "sleep",
        "600",
    ]


def one_replica_each(second: SecondEngine, service: str, image: str) -> tuple[str, str]:
    """`service-1` on the first engine, `service-2` on the second."""
    first_name, second_name = f"{service}-1", f"{service}-2"
    docker_cli(*replica_args(service, image, first_name))
    second.cli(*replica_args(service, image, second_name))
    return first_name, second_name


def members(service: str, cli: object = docker_cli) -> dict[str, dict[str, object]]:
    """The service's containers on one engine, stopped ones included: name → inspect."""
    run = cli  # docker_cli or SecondEngine.cli
    for _ in range(5):  # ebbflow may remove one between the listing and the inspect
        ids = (run("ps", "-aq", "--filter", f"label=ebbflow.service={service}") or "").split()  # type: ignore[operator]
        if not ids:
            return {}
        try:
            found = json.loads(run("inspect", *ids))  # type: ignore[operator]
        except RuntimeError:
            continue
        return {c["Name"].lstrip("/"): c for c in found}
    raise AssertionError(f"{service}'s containers kept changing under docker inspect")


async def start_ebbflow(
    ebbflow: Ebbflow, tmp_path: Path, second: SecondEngine, receiver: Receiver, *extra: str
) -> None:
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "docker": {
                    "nodes": {"n1": FIRST, "n2": second.host},
                    "node_check_interval": 0.5,
                    "node_failures": 2,
                },
                "inputs": {"containers": {}},
                "outputs": {
                    "prometheus": {},
                    "webhook": receiver.webhook_output(),
                },
            }
        )
    )
    ebbflow.start("--config", str(config), *extra)
    await until(lambda: ebbflow.metric("ebbflow_node_healthy", node="n2") == 1, 30)


async def test_a_replica_killed_or_removed_on_a_second_node_is_brought_back_there(
    second: SecondEngine, engine: str, ebbflow: Ebbflow, receiver: Receiver, project: str
) -> None:
    service = f"{project}-web"
    await start_ebbflow(ebbflow, ebbflow.workdir, second, receiver)
    first_name, second_name = one_replica_each(second, service, engine)
    await asyncio.sleep(1.5)  # both discoveries have seen them
    killed = members(service, second.cli)[second_name]
    second.cli("kill", second_name)
    await until(lambda: members(service, second.cli)[second_name]["State"]["Running"], 20)  # type: ignore[index]
    assert members(service, second.cli)[second_name]["Id"] == killed["Id"]  # restarted there

    second.cli("rm", "-f", second_name)
    await until(
        lambda: (
            second_name in members(service, second.cli)
            and members(service, second.cli)[second_name]["State"]["Running"]
        ),  # type: ignore[index]
        20,
    )
    replacement = members(service, second.cli)[second_name]
    assert replacement["Id"] != killed["Id"]
    assert replacement["Config"]["Labels"]["ebbflow.created-by"] == "replace"  # type: ignore[index]
    # Brought back on its own node; the first node has its own replica only.
    assert list(members(service)) == [first_name]
    rows = [(action, container, ok) for _, action, container, ok in healing_rows(ebbflow.state)]
    assert rows == [("restart", second_name, 1), ("restart", second_name, 1)]


async def test_a_stopped_engine_s_containers_come_up_on_the_other_and_nothing_is_left_behind(
    second: SecondEngine, engine: str, ebbflow: Ebbflow, receiver: Receiver, project: str
) -> None:
    service = f"{project}-web"
    await start_ebbflow(ebbflow, ebbflow.workdir, second, receiver)
    first_name, second_name = one_replica_each(second, service, engine)
    await asyncio.sleep(1.5)
    original = members(service)[first_name]
    try:
        second.stop()
        await until(lambda: second_name in members(service), 30)
        moved = members(service)[second_name]
        assert moved["State"]["Running"]  # type: ignore[index]
        assert moved["Config"]["Labels"]["ebbflow.created-by"] == "migrate"  # type: ignore[index]
        assert moved["Config"]["Labels"]["ebbflow.service"] == service  # type: ignore[index]
        await until(lambda: ebbflow.metric("ebbflow_node_healthy", node="n2") == 0, 5)
    finally:
        second.start()
    # Back: the original it still had (stopped with its engine) is removed.
    await until(lambda: second_name not in members(service, second.cli), 30)
    assert members(service, second.cli) == {}
    on_first = members(service)
    assert sorted(on_first) == [first_name, second_name]
    assert on_first[first_name]["Id"] == original["Id"]  # the healthy node's own is untouched
    assert all(c["State"]["Running"] for c in on_first.values())  # type: ignore[index]
    actions = {(a, c, ok) for _, a, c, ok in healing_rows(ebbflow.state)}
    assert ("migrate", second_name, 1) in actions
    assert ("remove_leftover", second_name, 1) in actions
    expected = {
        ("firing", "EbbflowNodeUnhealthy"),
        ("firing", "EbbflowContainerMigrated"),
        ("firing", "EbbflowLeftoverRemoved"),
        ("resolved", "EbbflowNodeUnhealthy"),
    }

    def sent() -> set[tuple[str, str]]:
        return {(s, n) for s, n, _ in alerts(receiver.bodies.get("/hook", []))}

    # Each alert goes in its own webhook batch: wait for all, not for the first of them.
    try:
        await until(lambda: expected <= sent(), 10)
    except TimeoutError:
        pytest.fail(f"alerts missing after 10 s: {expected - sent()}; sent: {sent()}")
    assert "recreated" in ebbflow.logs() and "unhealthy: engine not answering" in ebbflow.logs()


async def test_dry_run_on_two_nodes_changes_nothing_on_either(
    second: SecondEngine, engine: str, ebbflow: Ebbflow, receiver: Receiver, project: str
) -> None:
    service = f"{project}-web"
    await start_ebbflow(ebbflow, ebbflow.workdir, second, receiver, "--dry-run")
    _, second_name = one_replica_each(second, service, engine)
    await asyncio.sleep(1.5)
    second.cli("kill", second_name)
    await until(lambda: any(r[1] == "restart" for r in healing_rows(ebbflow.state)), 20)
    first_before = members(service)
    try:
        second.stop()
        await until(lambda: any(r[1] == "migrate" for r in healing_rows(ebbflow.state)), 30)
        await asyncio.sleep(2)
        assert members(service) == first_before
    finally:
        second.start()
    await asyncio.sleep(3)
    left = members(service, second.cli)
    assert list(left) == [second_name] and left[second_name]["State"]["Running"] is False  # type: ignore[index]
    assert members(service) == first_before
    assert "dry run: would migrate" in ebbflow.logs()


async def test_scale_out_spreads_over_the_nodes_and_scale_in_takes_the_newest(
    second: SecondEngine, engine: str, project: str
) -> None:
    service = f"{project}-spread"
    docker_cli(*replica_args(service, engine, f"{service}_1"))
    nodes = Nodes([DockerHandle(FIRST, node="n1"), DockerHandle(second.host, node="n2")])
    actuator = DockerEngineActuator(nodes, time.time, stop_timeout=1)
    key = ServiceKey("label", service)
    try:
        result = await actuator.apply(Decision(key, 1, 4, "test", time.time()))
        assert result.ok, result.detail
        # n2 had none: the first clone goes there; then each node has one, and so on.
        assert sorted(members(service)) == [f"{service}_1", f"{service}_3"]
        assert sorted(members(service, second.cli)) == [f"{service}_2", f"{service}_4"]
        result = await actuator.apply(Decision(key, 4, 2, "test", time.time()))
        assert result.containers == (f"{service}_4", f"{service}_3")  # newest first
        assert list(members(service)) == [f"{service}_1"]
        assert list(members(service, second.cli)) == [f"{service}_2"]
        # A node at fault takes nothing new, and its replicas do not count (as Swarm does
        # not count tasks on a down node); their numbers stay theirs.
        await nodes.handles["n2"].running_containers()  # seen, as discovery would have
        nodes.set_fault("n2", "engine", "down")
        result = await actuator.apply(Decision(key, 1, 2, "test", time.time()))
        assert result.ok, result.detail
        assert sorted(members(service)) == [f"{service}_1", f"{service}_3"]
    finally:
        await nodes.close()
