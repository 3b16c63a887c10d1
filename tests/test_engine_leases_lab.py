"""Plain engines on several hosts: a lease per engine (ebbflow/lease_engines.py), on the
lab's three engines. Two instances see all three; the first holds every engine's lease,
the second stands by. One host's engine stops: the first loses that engine's lease only
and goes on acting on the other two. It is SIGKILLed: the second takes the leases of the
engines that answer within two epochs and the grace, and acts. No need is acted on twice,
and nothing is placed on an engine whose lease the actor does not hold."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebbflow.config import ScopeConfig
from ebbflow.lease import lease_id
from tests import lab
from tests.conftest import RUN_ID, TEST_LABEL, free_port
from tests.ebbflow_process import Ebbflow, state_rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("lab_nodes")]

PERIOD, GRACE = 2.0, 1.0
LEASE = f"engines-{RUN_ID}"
PROJECT = f"el{RUN_ID}"
BURN = "while :; do :; done"  # its whole half core: above the policy's 50 %
POLICY = {
    "ebbflow.scale.metric": "cpu",
    "ebbflow.scale.max": "50",
    "ebbflow.scale.min": "10",
    "ebbflow.scale.min_replicas": "1",
    "ebbflow.scale.max_replicas": "2",
    "ebbflow.scale.window": "3",
    "ebbflow.scale.cooldown": "600",  # one action per service in this test
}


def lease_label(node: str) -> str:
    return f"{lease_id(ScopeConfig(labels={TEST_LABEL: RUN_ID}), LEASE)}@{node}"


def leading(proc: Ebbflow) -> dict[str, float | None]:
    return {n: proc.metric("ebbflow_leader", lease=lease_label(n)) for n in lab.NODES}


def start_service(name: str, node: lab.Node) -> None:
    labels = {
        "com.docker.compose.project": PROJECT,
        "com.docker.compose.service": name,
        "com.docker.compose.container-number": "1",
        TEST_LABEL: RUN_ID,
        **POLICY,
    }
    node.docker(
        "run", "-d", "--name", f"{PROJECT}-{name}-1", "--network", "none", "--cpus", "0.5",
        *[arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")],
        lab.IMAGE, "sh", "-c", BURN,
    )  # fmt: skip


def replicas(name: str) -> dict[str, str]:
    """Container name → node, of a service's running containers on the nodes that answer."""
    found = {}
    for n in lab.NODE_LIST:
        out = n.docker("ps", "--format", "{{.Names}}", "--filter",
                       f"label=com.docker.compose.service={name}", "--filter",
                       f"label=com.docker.compose.project={PROJECT}", check=False)  # fmt: skip
        found |= {line: n.name for line in out.split()}
    return found


def decisions(proc: Ebbflow) -> list[tuple[str, int, int, str, str]]:
    if not proc.state.exists():
        return []
    rows = state_rows(proc.state, "SELECT service, from_replicas, to_replicas, outcome, owner "
                                  "FROM decisions ORDER BY id")  # fmt: skip
    return [(str(s).rsplit("/", 1)[-1], int(f), int(t), str(o), str(w)) for s, f, t, o, w in rows]


def engines_config(folder: Path) -> Path:
    """ebbflow over the lab's three engines, a lease per engine."""
    config = folder / "ebbflow.yaml"
    config.write_text(json.dumps({
        "docker": {"nodes": {n.name: n.host for n in lab.NODE_LIST}, "timeout": 3,
                   "node_check_interval": 1, "node_failures": 2},
        "inputs": {"containers": {}, "node": False, "probes": False, "scrape": False},
        "actuators": ["docker"],
        "lease": {"backend": "engine", "period": PERIOD, "grace": GRACE},
    }))  # fmt: skip
    return config


@pytest.fixture
def cleanup() -> Iterator[None]:
    try:
        yield
    finally:
        n1 = lab.node("n1")
        if lab.alive(n1.run / "dockerd.ours") is None:
            lab.engine_up(n1)
            lab.swarm_up()
        for n in lab.NODE_LIST:
            ids = n.docker("ps", "-aq", "--filter", f"label={TEST_LABEL}={RUN_ID}", check=False)
            if ids:
                n.docker("rm", "-f", *ids.split(), check=False)


def test_an_instance_acts_on_an_engine_only_while_it_holds_its_lease(
    tmp_path: Path, cleanup: None
) -> None:
    config = engines_config(tmp_path)
    procs: list[Ebbflow] = []

    def instance(tag: str) -> Ebbflow:
        (tmp_path / tag).mkdir()
        proc = Ebbflow(tmp_path / tag, tmp_path / tag / "state.db", free_port(), LEASE)
        proc.start("--config", str(config))
        procs.append(proc)
        return proc

    try:
        first = instance("first")
        wait_for("the first instance holding all three engines' leases",
                 lambda: leading(first) == dict.fromkeys(lab.NODES, 1.0), 60,
                 first.assert_alive)  # fmt: skip
        second = instance("second")
        wait_for("the second standing by on all three",
                 lambda: leading(second) == dict.fromkeys(lab.NODES, 0.0), 60,
                 second.assert_alive)  # fmt: skip

        # One host's engine stops: its lease only is lost, by both.
        lab.engine_stop(lab.node("n1"))
        wait_for("the first holding n2's and n3's leases, not n1's",
                 lambda: leading(first) == {"n1": 0.0, "n2": 1.0, "n3": 1.0}, 30,
                 first.assert_alive)  # fmt: skip
        ready = first.readyz()
        assert ready is not None and "lease n1" in ready[1]["problems"], ready  # type: ignore[operator]

        # ...and it goes on acting on the others: a loaded service on n2 gets its second
        # replica on n3 (the engines it holds; n1 is down).
        start_service("s", lab.node("n2"))
        wait_for("s scaled out by the first", lambda: len(replicas("s")) == 2, 60,
                 first.assert_alive)  # fmt: skip
        assert sorted(replicas("s").values()) == ["n2", "n3"]
        wait_for("its outcome recorded", lambda: "None" not in str(decisions(first)), 10)
        made = decisions(first)
        assert [(s, f, t, o) for s, f, t, o, _ in made] == [("s", 1, 2, "ok")], made
        assert "the leases of n2" in made[0][4], made  # the owner names the leases it held
        assert decisions(second) == []  # a standby on every engine decides nothing

        # The first is killed: the second takes the leases of the engines that answer.
        assert first.proc is not None
        first.proc.kill()
        began = time.monotonic()
        wait_for("the second holding n2's and n3's leases",
                 lambda: leading(second) == {"n1": 0.0, "n2": 1.0, "n3": 1.0}, 30,
                 second.assert_alive)  # fmt: skip
        took = time.monotonic() - began
        # the killed holder had made the next epoch's object: two epochs, the grace, a tick
        assert took <= 2 * PERIOD + GRACE + PERIOD / 5 + 3, took

        start_service("u", lab.node("n3"))
        wait_for("u scaled out by the second", lambda: len(replicas("u")) == 2, 60,
                 second.assert_alive)  # fmt: skip
        assert sorted(replicas("u").values()) == ["n2", "n3"]
        time.sleep(3)  # long enough for a second action, if one were to come
        wait_for("its outcome recorded", lambda: "None" not in str(decisions(second)), 10)
        made = decisions(second)
        assert [(s, f, t, o) for s, f, t, o, _ in made] == [("u", 1, 2, "ok")], made
        assert len(replicas("s")) == 2 and len(replicas("u")) == 2
        assert "Traceback" not in first.logs() + second.logs()
        print(f"per-engine leases: handed over {took:.1f}s after the SIGKILL")
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop()


def test_the_status_page_shows_every_node_its_replicas_and_an_engine_down(
    tmp_path: Path, cleanup: None
) -> None:
    """The page in the lab: one column per engine, each replica in its node's column; an
    engine stopped shows as down on the page, live."""
    from tests.ebbflow.web.browser import (
        COLUMNS,
        chromium,
        classes_of,
        missing,
        screenshot,
        text_of,
    )

    if missing() is not None:
        pytest.fail(missing())
    config = engines_config(tmp_path)
    proc = Ebbflow(tmp_path, tmp_path / "state.db", free_port(), LEASE)
    placed = {}
    for n in lab.NODE_LIST:
        name = f"{PROJECT}-page{n.name}-1"
        n.docker("run", "-d", "--name", name, "--network", "none",
                 "--label", f"{TEST_LABEL}={RUN_ID}", "--label", f"ebbflow.service=page{n.name}",
                 "--label", "aliyun.scale=1", lab.IMAGE, "sleep", "600")  # fmt: skip
        placed[name] = n.name
    n3 = lab.node("n3")
    try:
        proc.start("--config", str(config))
        wait_for("the instance holding all three engines' leases",
                 lambda: leading(proc) == dict.fromkeys(lab.NODES, 1.0), 60,
                 proc.assert_alive)  # fmt: skip
        with chromium() as driver:
            driver.get(f"http://127.0.0.1:{proc.port}/")
            wait_for("every replica in its node's column",
                     lambda: driver.execute_script(COLUMNS) == placed, 15)  # fmt: skip
            lab.engine_stop(n3)

            def n3_down() -> bool:
                head = 'th.node[data-node="n3"]'
                text = text_of(driver, head)  # the link lost, then the checks failed
                return "down" in classes_of(driver, head) and (
                    "engine down" in text and "engine not answering" in text
                )

            wait_for("n3's engine down on the page", n3_down, 30, proc.assert_alive)
            for other in ("n1", "n2"):
                text = text_of(driver, f'th.node[data-node="{other}"]')
                assert "engine up" in text, text
            screenshot(driver, "status-page-lab")
    finally:
        proc.stop()
        if lab.alive(n3.run / "dockerd.ours") is None:
            lab.engine_up(n3)
            lab.swarm_up()
