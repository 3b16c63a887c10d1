"""The supervisor restarts what crashes, with the documented backoff, and says so."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from ebbflow.bus import Bus
from ebbflow.config import SupervisionConfig
from ebbflow.exporters.prometheus import PrometheusOutput
from ebbflow.health import Health
from ebbflow.supervisor import Supervisor

from ..conftest import bound_address

pytestmark = pytest.mark.faults


class Crashing:
    """Raises on its first `crashes` runs, then runs until cancelled."""

    name = "crashing"

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.runs = 0
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            raise RuntimeError(f"boom {self.runs}")
        self.running.set()
        await asyncio.Event().wait()


class Waits:
    """A sleep the test lets go of: the supervisor's backoff, on a virtual clock."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.waiting.set()
        await self.release.wait()
        self.release.clear()
        self.waiting.clear()


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_a_crashing_component_restarts_with_doubling_backoff_and_is_down_meanwhile() -> None:
    crashing = Crashing(crashes=4)
    waits = Waits()
    bus, health = Bus(), Health()
    server = PrometheusOutput(bus, "127.0.0.1:0", health)
    supervisor = Supervisor([server, crashing], SupervisionConfig(), sleep=waits)
    health.add_check(supervisor.problems)
    health.components = supervisor.snapshot
    task = asyncio.create_task(supervisor.run())
    _, port = await bound_address(server)
    for crash in range(4):
        await waits.waiting.wait()
        status, body = await asyncio.to_thread(readyz, port)
        assert status == 503
        assert (
            body["problems"]["crashing"]
            == f"down, waiting to restart: RuntimeError: boom {crash + 1}"
        )
        assert body["components"]["crashing"]["up"] is False
        up = {
            s.name: s.value
            for s in supervisor.telemetry(0)
            if s.labels == (("component", "crashing"),)
        }
        assert up == {
            "ebbflow_component_up": 0.0,
            "ebbflow_component_restarts_total": crash,
            "ebbflow_component_given_up": 0.0,
        }
        waits.release.set()
    await crashing.running.wait()
    assert waits.asked == [1.0, 2.0, 4.0, 8.0]  # 1 s doubling (to 60 s)
    status, body = await asyncio.to_thread(readyz, port)
    assert (status, body["status"], body["problems"]) == (200, "ready", {})
    assert body["components"]["crashing"] == {
        "up": True,
        "restarts": 4,
        "crashes_in_a_row": 4,
        "given_up": False,
        "last_error": "RuntimeError: boom 4",
    }
    supervisor.stop()
    await task


async def test_the_backoff_caps_and_a_component_that_keeps_crashing_is_given_up(
    caplog: Any,
) -> None:
    crashing = Crashing(crashes=100)
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    config = SupervisionConfig(backoff_max=16, max_restarts=7)
    supervisor = Supervisor([crashing], config, sleep=sleep)
    task = asyncio.create_task(supervisor.run())
    while not supervisor.status["crashing"].given_up:  # noqa: ASYNC110 (no event to wait on)
        await asyncio.sleep(0)
    assert asked == [1, 2, 4, 8, 16, 16, 16]
    assert crashing.runs == 8  # the first run and 7 restarts
    assert "given up after 8 crashes in a row" in supervisor.problems()["crashing"]
    given_up = [r for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 1 and given_up[0].levelname == "ERROR"
    crashed = [r for r in caplog.records if "crashed (RuntimeError" in r.getMessage()]
    assert len(crashed) == 7 and all(r.exc_info for r in crashed)  # each once, with traceback
    supervisor.stop()
    await task


async def test_the_backoff_starts_over_after_a_long_enough_run() -> None:
    now = [0.0]
    runs: list[float] = []

    class Flaky:
        name = "flaky"

        async def run(self) -> None:
            runs.append(now[0])
            now[0] += 100.0 if len(runs) == 3 else 1.0  # the third run lasts 100 s
            raise OSError("gone")

    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        if len(asked) == 5:
            supervisor.stop()
            await asyncio.Event().wait()

    supervisor = Supervisor(
        [Flaky()], SupervisionConfig(reset_after=60), sleep=sleep, monotonic=lambda: now[0]
    )
    await supervisor.run()
    assert asked == [1, 2, 1, 2, 4]  # reset by the 100 s run


async def test_a_component_that_returns_is_restarted_like_one_that_crashed() -> None:
    class Quits:
        name = "quits"
        runs = 0

        async def run(self) -> None:
            self.runs += 1
            if self.runs > 2:
                await asyncio.Event().wait()

    quits = Quits()

    async def sleep(_seconds: float) -> None:
        return None

    supervisor = Supervisor([quits], SupervisionConfig(), sleep=sleep)
    task = asyncio.create_task(supervisor.run())
    while quits.runs < 3:  # noqa: ASYNC110
        await asyncio.sleep(0)
    assert supervisor.status["quits"].restarts == 2
    assert supervisor.status["quits"].last_error == "returned while ebbflow was running"
    supervisor.stop()
    await task
