"""Shared fixtures: a virtual clock, and a real Docker engine with a local busybox image.

Integration tests need the engine that `scripts/test` starts (or any that answers on
DOCKER_HOST). Every container a test creates carries the `ebbflow.test` label and is
removed at the end of the session, even when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import lab
from tests.kafka_mock import MockCluster

if TYPE_CHECKING:
    from tests.ebbflow_process import Ebbflow

TEST_LABEL = "ebbflow.test"
IMAGE = os.environ.get("EBBFLOW_TEST_IMAGE", "ebbflow/busybox:latest")
RUN_ID = uuid.uuid4().hex[:8]


class VirtualClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def docker_cli(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before in this run: two calls in a
    row may otherwise get the same port (the first is not bound until its server starts),
    and two servers of one test then collide."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@pytest.fixture(scope="session")
def engine() -> Iterator[str]:
    """The test image on a reachable engine; fails (not skips) when there is none."""
    if shutil.which("docker") is None:
        pytest.fail("no docker CLI: run scripts/test, which installs and starts the engine")
    probe = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.fail(f"no Docker engine answers ({probe.stderr.strip()}): run scripts/test")
    if not docker_cli("images", "-q", IMAGE):
        pytest.fail(f"image {IMAGE} missing: scripts/build-image makes it")
    yield IMAGE
    remove_test_containers()


@pytest.fixture
def run_container(engine: str) -> Iterator[object]:
    """Start a labelled test container: run_container(name, *docker_run_args, cmd=[...])."""

    starting = threading.Semaphore(1000)  # one slot per `docker run` under way

    def start(name: str, *args: str, cmd: tuple[str, ...] = ("sleep", "600")) -> str:
        with slot(starting):
            return docker_cli(
                "run", "-d", "--name", name, "--label", f"{TEST_LABEL}={RUN_ID}",
                *args, engine, *cmd,
            )  # fmt: skip

    yield start
    # A test that failed while a worker thread still ran `docker run` (asyncio.to_thread)
    # would leave that container behind: wait for every start to return first.
    for _ in range(1000):
        starting.acquire(timeout=120)
    # Clones made by the scaler inherit the test label, so this removes them too.
    remove_test_containers()


@contextlib.contextmanager
def slot(semaphore: threading.Semaphore) -> Iterator[None]:
    semaphore.acquire()
    try:
        yield
    finally:
        semaphore.release()


def remove_test_containers() -> None:
    ids = docker_cli("ps", "-aq", "--filter", f"label={TEST_LABEL}={RUN_ID}", check=False).split()
    if ids:
        docker_cli("rm", "-f", *ids, check=False)


def compose_containers(project: str, service: str) -> list[str]:
    """Names of a compose service's running containers, sorted."""
    out = docker_cli(
        "ps",
        "--format",
        "{{.Names}}",
        "--filter",
        f"label=com.docker.compose.project={project}",
        "--filter",
        f"label=com.docker.compose.service={service}",
    )
    return sorted(out.split())


def running_commands(*filters: str) -> dict[str, str]:
    """Each running container that `docker ps --filter` selects → its command, in one call
    (no race with a container removed between a listing and an inspect)."""
    out = docker_cli(
        "ps", "--no-trunc", "--format", "{{.Names}}\t{{.Command}}",
        *[arg for f in filters for arg in ("--filter", f)],
    )  # fmt: skip
    pairs = (line.split("\t", 1) for line in out.splitlines() if line)
    return {name: command.strip('"') for name, command in pairs}


async def bound_address(component: object, timeout: float = 2.0) -> tuple[str, int]:
    """Wait until a listening component (its `bound` attribute) has its socket."""
    async with asyncio.timeout(timeout):
        while getattr(component, "bound", None) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return component.bound  # type: ignore[attr-defined, no-any-return]


def start_httpd(run_container: object, name: str, www: Path, port: int, *mounts: str) -> str:
    """A busybox httpd serving `www` on 127.0.0.1:`port`, host network (loopback only)."""
    return run_container(  # type: ignore[operator, no-any-return]
        name,
        "--network",
        "host",
        "-v",
        f"{www}:/www:ro",
        *mounts,
        cmd=("httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", "/www"),
    )


@pytest.fixture
def project() -> str:
    """A compose project name unique to the test, so services never collide."""
    return f"ebbt{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def served(argv: list[str], health_url: str, cwd: Path | None = None) -> Iterator[None]:
    """A real server process, ready when `health_url` answers; stopped by its pid."""
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} is not installed: scripts/test installs it")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    try:
        wait_http(health_url, proc)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_victoria_metrics(port: int, data: Path) -> contextlib.AbstractContextManager[None]:
    url = f"http://127.0.0.1:{port}"
    argv = [
        "victoria-metrics",
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={data}",
        "-search.latencyOffset=0s",
        "-loggerLevel=ERROR",
    ]
    return served(argv, f"{url}/health")


def start_prometheus(
    port: int, home: Path, targets: list[str], interval: str = "1s", remote_write: str = ""
) -> contextlib.AbstractContextManager[None]:
    """Debian's Prometheus scraping `targets` (HOST:PORT) every `interval`; remote-writing
    what it scrapes to `remote_write` (a URL) within a second, when given."""
    config = home / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {interval}, evaluation_interval: {interval}}}\n"
        "scrape_configs:\n"
        f"  - job_name: ebbflow\n    static_configs: [{{targets: {targets!r}}}]\n"
        + (
            f"remote_write:\n  - url: {remote_write}\n"
            "    queue_config: {batch_send_deadline: 1s, max_samples_per_send: 500}\n"
            if remote_write
            else ""
        )
    )
    argv = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=error",
    ]
    return served(argv, f"http://127.0.0.1:{port}/-/ready", cwd=home)


@pytest.fixture
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's VictoriaMetrics on a loopback port; its base URL."""
    port = free_port()
    with start_victoria_metrics(port, tmp_path_factory.mktemp("vm")):
        yield f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Influxd:
    url: str
    username: str
    password: str

    def query(self, q: str, db: str = "", anonymous: bool = False) -> dict[str, Any]:
        import json
        import urllib.parse
        import urllib.request

        params = {"q": q} | ({"db": db} if db else {})
        if not anonymous:  # influxd reads credentials from the URL, not the form
            params |= {"u": self.username, "p": self.password}
        url = f"{self.url}/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, data=b"", timeout=10) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
        return answer


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """Debian's InfluxDB 1.6 with authentication on, database `ebbflow`, user admin."""
    home = tmp_path_factory.mktemp("influxd")
    port, rpc_port = free_port(), free_port()
    config = subprocess.run(
        ["influxd", "config"], capture_output=True, text=True, check=True
    ).stdout
    replacements = {
        'bind-address = "127.0.0.1:8088"': f'bind-address = "127.0.0.1:{rpc_port}"',
        'bind-address = ":8086"': f'bind-address = "127.0.0.1:{port}"',
        '"/var/lib/influxdb/': f'"{home}/',
        "auth-enabled = false": "auth-enabled = true",
        "store-enabled = true": "store-enabled = false",
        "log-enabled = true": "log-enabled = false",
    }
    for old, new in replacements.items():
        config = config.replace(old, new)
    (home / "influxdb.conf").write_text(config)
    url = f"http://127.0.0.1:{port}"
    with served(["influxd", "run", "-config", str(home / "influxdb.conf")], f"{url}/ping"):
        server = Influxd(url, "admin", "s3cret")
        # The first user may be created without credentials; after that, auth is on.
        server.query("CREATE USER admin WITH PASSWORD 's3cret' WITH ALL PRIVILEGES", anonymous=True)
        server.query("CREATE DATABASE ebbflow")
        yield server


@pytest.fixture
def kafka_bootstrap() -> Iterator[tuple[str, MockCluster | None]]:
    """A real broker when EBBFLOW_TEST_KAFKA names one, else librdkafka's mock cluster."""
    real = os.environ.get("EBBFLOW_TEST_KAFKA")
    if real:
        yield real, None
        return
    with MockCluster() as cluster:
        yield cluster.bootstrap, cluster


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer in {timeout}s")


@pytest.fixture
def ebbflow(tmp_path: Path) -> Iterator[Ebbflow]:
    """An `ebbflow run` of the test's own; stopped at the end if still running."""
    from tests.ebbflow_process import Ebbflow

    proc = Ebbflow(tmp_path, tmp_path / "state.db", free_port())
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop()


@pytest.fixture(scope="module")
def lab_nodes() -> Iterator[list[lab.Node]]:
    """The three-node Swarm of tests/lab.py, for one test module (root only)."""
    if os.geteuid() != 0:
        pytest.skip("the multi-node lab needs root: network namespaces and engines")
    with lab.running() as nodes:
        yield nodes


QUIET_LOCK = "EBBFLOW_TEST_QUIET_LOCK"  # a file the `beside` run holds locked while it runs
BESIDE = "EBBFLOW_TEST_BESIDE"  # set for the beside run itself
QUIET_WAIT = 900.0  # seconds a `quiet` test waits for it at most: the beside run's length


def pytest_configure(config: pytest.Config) -> None:
    """The beside run (scripts/test) holds QUIET_LOCK's file locked until it exits."""
    path = os.environ.get(QUIET_LOCK)
    if path and os.environ.get(BESIDE):
        import fcntl

        lock = open(path, "w")  # noqa: SIM115 - held for the whole run, closed by its exit
        fcntl.flock(lock, fcntl.LOCK_EX)
        config.stash[QUIET_STASH] = lock


QUIET_STASH = pytest.StashKey[object]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `quiet` run last, each run's order otherwise kept: by then the tests
    beside are long done, and nothing waits for them (in CI a quiet test early in the
    run waited 137 s)."""
    items.sort(key=lambda item: item.get_closest_marker("quiet") is not None)


@pytest.fixture(autouse=True)
def quiet(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked `quiet` measures time on two cores: it waits until the tests
    scripts/test runs `beside` the others are done (their run holds QUIET_LOCK's file
    locked), so their load is not in its figures. Without the variable, nothing waits."""
    path = os.environ.get(QUIET_LOCK)
    if request.node.get_closest_marker("quiet") is None or not path:
        yield
        return
    import fcntl

    with open(path) as lock:
        deadline = time.monotonic() + QUIET_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the tests beside still run after {QUIET_WAIT:g}s")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
