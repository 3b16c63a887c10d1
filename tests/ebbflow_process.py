"""`ebbflow run` as its own process, as an operator runs it, for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.conftest import RUN_ID, TEST_LABEL


class Ebbflow:
    """An `ebbflow run` process of the test's own, stopped by its pid. It acts only on this
    test run's containers (scoped to the `ebbflow.test=<run id>` label every test container
    carries): the engine may hold others."""

    def __init__(self, workdir: Path, state: Path, port: int, lease: str = "") -> None:
        self.workdir, self.state, self.port = workdir, state, port
        # Its own lease, so one test's killed instance never keeps the next one standing
        # by; instances meant to compete share one.
        self.lease = lease or f"test-{uuid.uuid4().hex[:8]}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *extra: str, env: dict[str, str] | None = None) -> None:
        self.starts += 1
        log = open(self.workdir / f"ebbflow-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ebbflow",
                "run",
                "--state",
                str(self.state),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--interval",
                "0.5",
                "--scope-label",
                f"{TEST_LABEL}={RUN_ID}",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env={
                **os.environ,
                "EBBFLOW_LOG_LEVEL": "DEBUG",
                "EBBFLOW_LEASE__NAME": self.lease,
                **(env or {}),
            },
        )

    def assert_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"ebbflow exited with {self.proc.returncode}:\n{self.logs()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def logs(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("ebbflow-*.log"))
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, name: str, /, **labels: str) -> float | None:
        """One value from /metrics (None while absent or while ebbflow is not serving)."""
        try:
            text = self.metrics()
        except OSError:
            return None
        for line in text.splitlines():
            match = re.match(r"^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$", line)
            if match is None or match.group(1) != name:
                continue
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(match.group(3))
        return None

    def readyz(self) -> tuple[int, dict[str, object]] | None:
        """(status, body) of /readyz; None while nothing serves."""
        import json
        import urllib.error

        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())
        except OSError:
            return None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as after a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def state_rows(state: Path, query: str) -> list[tuple[object, ...]]:
    """Rows of `query` on ebbflow's state; none while ebbflow has not yet created it (the file
    can exist a moment before its tables)."""
    if not state.exists():
        return []
    try:
        with sqlite3.connect(state) as db:
            return list(db.execute(query).fetchall())
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise


def wait_for(
    what: str,
    predicate: Callable[[], bool],
    timeout: float,
    during: Callable[[], None] = lambda: None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        during()
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
