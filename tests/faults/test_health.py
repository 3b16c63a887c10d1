"""Health that tells the truth about every dependency: a hung engine, a state file deleted,
read-only or full, a webhook target that fails each turn /readyz to 503 naming it within
the documented bound, and back to 200 on recovery; while the state cannot be written, no
action is taken. The operator's pause reaches the running instance at once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import RUN_ID, TEST_LABEL, docker_cli, free_port
from tests.ebbflow_process import Ebbflow, wait_for

from .harness import DockerProxy, state_dir

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def not_ready_naming(ebbflow: Ebbflow, dependency: str) -> Callable[[], bool]:
    def check() -> bool:
        status = ebbflow.readyz()
        if status is None or status[0] != 503:
            return False
        deps = status[1].get("dependencies", {})
        assert isinstance(deps, dict)
        return any(name.startswith(dependency) and not d["up"] for name, d in deps.items())

    return check


def ready(ebbflow: Ebbflow) -> Callable[[], bool]:
    return lambda: (ebbflow.readyz() or (0, {}))[0] == 200


def timed(what: str, predicate: Callable[[], bool], bound: float, ebbflow: Ebbflow) -> float:
    """Seconds until `predicate`, asserted within `bound`."""
    began = time.monotonic()
    wait_for(what, predicate, bound, ebbflow.assert_alive)
    return time.monotonic() - began


@pytest.fixture
def proxy(engine: str, tmp_path: Path) -> Iterator[DockerProxy]:
    made = DockerProxy(tmp_path / "proxy.sock", "/var/run/docker.sock")
    yield made
    made.close()


def test_a_hung_engine_is_named_within_timeout_and_interval_and_recovers(
    proxy: DockerProxy, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        f"docker: {{host: 'unix://{proxy.path}', timeout: 2, node_check_interval: 1}}\n"
        "inputs: {containers: {}}\nlease: {enabled: false}\n"
    )
    ebbflow.start("--config", str(config))
    timed("ready", ready(ebbflow), 30, ebbflow)
    proxy.set("hang")  # connections stay open, nothing answers
    took = timed("the engine named", not_ready_naming(ebbflow, "engine"), 10, ebbflow)
    assert took <= 2 + 1 + 1.5  # docker.timeout + node_check_interval (README), and a poll
    # /metrics has it at the next telemetry round (1 s)
    wait_for("metrics", lambda: ebbflow.metric("ebbflow_docker_events_connected") == 0.0, 3)
    assert ebbflow.metric("ebbflow_dependency_up", dependency=f"engine unix://{proxy.path}") == 0
    proxy.set("pass")
    timed("ready again", ready(ebbflow), 40, ebbflow)
    wait_for("metrics", lambda: ebbflow.metric("ebbflow_docker_events_connected") == 1.0, 3)
    for mode in ("reset", "error500", "truncate"):  # every other way of failing is named too
        proxy.set(mode)
        timed(f"the engine named ({mode})", not_ready_naming(ebbflow, "engine"), 15, ebbflow)
        proxy.set("pass")
        timed(f"ready again after {mode}", ready(ebbflow), 40, ebbflow)
    proxy.set("huge_event")  # a 2 MB event line: skipped and counted, never a disconnect
    docker_cli("run", "--rm", "--network", "none", "--label", f"{TEST_LABEL}={RUN_ID}",
               "ebbflow/busybox:latest", "true")  # fmt: skip
    wait_for(
        "the huge line skipped",
        lambda: (ebbflow.metric("ebbflow_docker_events_skipped_total", node="", reason="too_long")
                 or 0) >= 1,
        20,
    )  # fmt: skip
    assert ebbflow.metric("ebbflow_docker_events_connected") == 1.0
    assert ebbflow.stop() == 0


def test_a_state_file_deleted_under_the_instance_is_named_then_written_back(
    ebbflow: Ebbflow,
) -> None:
    ebbflow.start()
    timed("ready", ready(ebbflow), 30, ebbflow)
    ebbflow.state.unlink()
    took = timed("the state named", not_ready_naming(ebbflow, "state"), 5, ebbflow)
    assert took <= 1.5  # one check (1 s), and a poll
    timed("ready again", ready(ebbflow), 5, ebbflow)
    assert ebbflow.state.exists()
    logs = ebbflow.logs()
    assert "was deleted under the running instance" in logs
    assert "written back from the open copy" in logs


@pytest.mark.parametrize("fault", ["read_only", "full"])
def test_while_the_state_cannot_be_written_no_action_is_taken(
    fault: str, run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    with state_dir(tmp_path / "state", "4m" if fault == "full" else None) as state:
        ebbflow = Ebbflow(tmp_path, state.state, free_port())
        config = tmp_path / "ebbflow.yaml"
        config.write_text("reconcile: {grace: 1, interval: 0.5}\nhealing: {enabled: false}\n")
        try:
            ebbflow.start("--config", str(config))
            timed("ready", ready(ebbflow), 30, ebbflow)
            (state.read_only if fault == "read_only" else state.fill)()
            timed("the state named", not_ready_naming(ebbflow, "state"), 5, ebbflow)
            run_container(
                f"{project}-web-1", "--network", "none",
                "--label", f"ebbflow.service={project}-web", "--label", "aliyun.scale=2",
            )  # fmt: skip
            time.sleep(8)  # past the grace period, many times
            members = f"label=ebbflow.service={project}-web"
            assert len(docker_cli("ps", "-aq", "--filter", members).split()) == 1
            assert "action failed" not in ebbflow.logs()
            assert "action refused" not in ebbflow.logs()  # not even decided
            (state.writable if fault == "read_only" else state.unfill)()
            timed("ready again", ready(ebbflow), 10, ebbflow)
            wait_for(
                "the count restored once the state is written",
                lambda: len(docker_cli("ps", "-q", "--filter", members).split()) == 2,
                30,
                ebbflow.assert_alive,
            )
        finally:
            if ebbflow.proc is not None and ebbflow.proc.poll() is None:
                ebbflow.stop()


class FlakyHook:
    """A webhook receiver that fails (500) while `failing` is set."""

    def __init__(self, port: int) -> None:
        self.failing = True
        self.accepted = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.failing:
                    self.send_response(500)
                else:
                    outer.accepted += 1
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_failing_webhook_target_is_named_until_it_takes_them(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    port = free_port()
    hook = FlakyHook(port)
    try:
        config = tmp_path / "ebbflow.yaml"
        config.write_text(
            f"outputs: {{webhook: {{targets: [{{url: 'http://127.0.0.1:{port}/hook', "
            "name: flaky}], group_wait: 0.1, backoff_max: 1}}\n"
        )
        ebbflow.start("--config", str(config))
        timed("ready", ready(ebbflow), 30, ebbflow)
        run_container(f"{project}-bad", "--network", "none",
                      "--label", "aliyun.auto_scaling.max_cpu=lots")  # fmt: skip
        timed("the target named", not_ready_naming(ebbflow, "webhook flaky"), 15, ebbflow)
        status = ebbflow.readyz()
        assert status is not None and "500" in str(status[1]["problems"]["webhook flaky"])
        hook.failing = False
        timed("ready again", ready(ebbflow), 15, ebbflow)
        assert hook.accepted >= 1  # what waited was delivered, not lost
    finally:
        hook.close()


def test_pause_reaches_the_running_instance_within_a_second(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    ebbflow.start()
    timed("ready", ready(ebbflow), 30, ebbflow)
    began = time.monotonic()
    paused = subprocess.run(
        [sys.executable, "-m", "ebbflow", "pause", f"{project}/web", "--state", str(ebbflow.state)],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert paused.returncode == 0, paused.stderr
    assert "taken by the running instance (pid" in paused.stdout
    wait_for(
        "the pause in effect",
        lambda: ebbflow.metric("ebbflow_service_paused", service=f"{project}/web") == 1.0,
        5,
    )
    # The command returned once the instance had it; /metrics shows it within a second.
    assert time.monotonic() - began < 1.0 + paused_cli_seconds(paused)
    status = subprocess.run(
        [sys.executable, "-m", "ebbflow", "status", "--state", str(ebbflow.state)],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )  # fmt: skip
    assert status.returncode == 0 and status.stdout.startswith("ready (pid ")
    assert "dependency state: up" in status.stdout


def paused_cli_seconds(result: subprocess.CompletedProcess[str]) -> float:
    """The CLI's own start-up (Python imports), which is not the instance's to answer for."""
    return 3.0
