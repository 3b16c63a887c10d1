"""The engine goes away: a test-owned dockerd restarted under a watching ebbflow, and an
engine that accepts connections but never answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IMAGE, RUN_ID, TEST_LABEL
from tests.ebbflow_process import Ebbflow, state_rows, wait_for
from tests.second_engine import SecondEngine

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def engine2(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondEngine]:
    node = SecondEngine(tmp_path_factory.mktemp("engine-restart"), engine)
    node.start()
    try:
        yield node
    finally:
        node.start()  # to remove what the test made on it
        node.remove_test_containers()
        node.remove()


def run_on(node: SecondEngine, name: str, *args: str) -> str:
    out = node.cli(
        "run", "-d", "--name", name, "--network", "none", "--label", f"{TEST_LABEL}={RUN_ID}",
        *args, IMAGE, "sleep", "600",
    )  # fmt: skip
    assert out is not None
    return out


def on_metrics(ebbflow: Ebbflow, name: str) -> bool:
    try:
        return f'name="{name}"' in ebbflow.metrics()
    except OSError:
        return False


def test_a_restarted_engine_is_listed_again_and_nothing_meanwhile_is_missed(
    engine2: SecondEngine, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    # ebbflow reaches the engine through a link the test can take away, so what happens
    # while it is disconnected is known for sure: only the re-listing can see it.
    link = tmp_path / "engine.sock"
    link.symlink_to(engine2.socket)
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        f"docker: {{host: 'unix://{link}', timeout: 3}}\n"
        "inputs: {containers: {}}\nreconcile: {enabled: false}\nhealing: {enabled: false}\n"
    )
    run_on(engine2, "before", "--restart", "always")
    run_on(engine2, "removed", "--restart", "always")  # comes back with the engine
    ebbflow.start("--config", str(config))
    wait_for("both on /metrics", lambda: on_metrics(ebbflow, "removed"), 30, ebbflow.assert_alive)
    assert on_metrics(ebbflow, "before")
    up = lambda: (  # noqa: E731
        ebbflow.metric("ebbflow_input_up", input="containers"),
        ebbflow.metric("ebbflow_docker_events_connected"),
    )
    wait_for("connected", lambda: up() == (1.0, 1.0), 10, ebbflow.assert_alive)
    seen: list[tuple[float | None, float | None]] = []

    def observe() -> None:
        ebbflow.assert_alive()
        seen.append(up())

    engine2.stop()
    link.unlink()
    wait_for("the outage on /metrics", lambda: up() == (0.0, 0.0), 30, observe)
    status = ebbflow.readyz()
    assert status is not None and status[0] == 503
    assert "engine unavailable" in str(status[1]["problems"]["containers"])  # type: ignore[index]

    engine2.start()
    back = time.monotonic()
    run_on(engine2, "during")  # started while ebbflow cannot see the engine
    engine2.cli("rm", "-f", "removed")  # and one removed
    link.symlink_to(engine2.socket)
    wait_for("reconnected", lambda: up() == (1.0, 1.0), 30, observe)
    run_on(engine2, "after")
    wait_for(
        "the containers of the outage and after it on /metrics, the removed one gone",
        lambda: (
            on_metrics(ebbflow, "during")
            and on_metrics(ebbflow, "after")
            and not on_metrics(ebbflow, "removed")
        ),
        30,
        observe,
    )
    assert time.monotonic() - back < 30
    assert (0.0, 0.0) in seen and seen[-1] == (1.0, 1.0)
    status = ebbflow.readyz()
    assert status is not None and status[0] == 200, status
    ready = subprocess.run(
        [sys.executable, "-m", "ebbflow", "status", "--listen", f"127.0.0.1:{ebbflow.port}"],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert ready.returncode == 0 and ready.stdout.startswith("ready"), ready.stdout
    assert ebbflow.stop() == 0
    logs = ebbflow.logs()
    assert logs.count("ebbflow.discovery: engine unavailable") == 1, logs
    # the re-listing found exactly `before` (restarted by the engine) and `during`
    assert logs.count("ebbflow.discovery: engine recovered") == 1, logs
    assert "answers again, 2 running containers" in logs, logs


class SilentEngine:
    """A unix socket that accepts connections and never answers a byte."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.server.close()


def test_an_engine_that_never_answers_is_reported_at_once(ebbflow: Ebbflow, tmp_path: Path) -> None:
    silent = SilentEngine(tmp_path / "silent.sock")
    config = tmp_path / "ebbflow.yaml"
    config.write_text("docker: {timeout: 2}\ninputs: {containers: {}}\n")
    try:
        # A DOCKER_HOST without a scheme is the socket's path.
        ebbflow.start("--config", str(config), env={"DOCKER_HOST": str(silent.path)})
        wait_for(
            "the silence reported",
            lambda: "engine unavailable" in ebbflow.logs(),
            20,
            ebbflow.assert_alive,
        )
        assert ebbflow.metric("ebbflow_input_up", input="containers") == 0.0
        assert ebbflow.metric("ebbflow_docker_events_connected") == 0.0
        status = ebbflow.readyz()
        assert status is not None and status[0] == 503
        problem = str(status[1]["problems"]["containers"])  # type: ignore[index]
        assert problem.startswith(f"engine unavailable: unix://{silent.path}: ")
        status_cli = subprocess.run(
            [sys.executable, "-m", "ebbflow", "status", "--listen", f"127.0.0.1:{ebbflow.port}"],
            capture_output=True, text=True, timeout=30, cwd=tmp_path,
        )  # fmt: skip
        assert status_cli.returncode == 1, status_cli.stderr
        assert status_cli.stdout.startswith("not ready")
        assert "  containers: engine unavailable: unix://" in status_cli.stdout
        time.sleep(5)  # backing off, not logging every try
        assert ebbflow.logs().count("ebbflow.discovery: engine unavailable") == 1
        assert ebbflow.stop() == 0
    finally:
        silent.close()


def test_an_engine_restart_under_a_service_is_an_outage_restored_never_a_retirement(
    engine2: SecondEngine, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    """dockerd stopped and started under `aliyun.scale=4`: its shutdown stops all four
    replicas (and says `stop` for each) before the stream ends. No operator did anything:
    the service comes back to 4, and the history says outage and restore."""
    service = f"restart-{RUN_ID}"
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        f"docker: {{host: '{engine2.host}', timeout: 3, node_check_interval: 1}}\n"
        "reconcile: {grace: 2, interval: 0.5, redeploy_window: 5}\n"
        "inputs: {containers: {}}\n"
    )
    for n in range(1, 5):
        run_on(engine2, f"{service}-{n}", "--label", f"ebbflow.service={service}",
               "--label", "aliyun.scale=4")  # fmt: skip
    ebbflow.start("--config", str(config))

    def running() -> int:
        out = engine2.cli("ps", "-q", "--filter", f"label=ebbflow.service={service}", check=False)
        return len((out or "").split())

    wait_for(
        "the desired count",
        lambda: ebbflow.metric("ebbflow_service_replicas_desired", service=service) == 4,
        30,
        ebbflow.assert_alive,
    )
    engine2.stop()  # SIGTERM: it stops every container, then goes away
    engine2.start()
    assert running() == 0  # nothing restarts them by itself (no restart policy)
    wait_for("4 running again", lambda: running() == 4, 120, ebbflow.assert_alive)
    time.sleep(5)  # nothing more happens once it is back
    assert running() == 4
    rows = state_rows(
        ebbflow.state,
        f"SELECT origin, outcome, reason FROM decisions WHERE service = 'label:{service}'",
    )
    origins = [row[0] for row in rows]
    assert "operator" not in origins, rows
    assert origins.count("outage") == 1, rows
    assert ebbflow.metric("ebbflow_service_retired", service=service) is None
    assert ebbflow.metric("ebbflow_service_replicas_desired", service=service) == 4
    assert "retired" not in ebbflow.logs()
