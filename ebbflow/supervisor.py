"""Runs every component in one TaskGroup, restarting any that fails (OTP style).

A component that raises, or returns while the process is not stopping, is restarted
after a backoff that doubles from `backoff_initial` to `backoff_max` and starts over once
the component has run `reset_after` seconds. Each crash is logged once with its
traceback and counted. While a component waits for its restart it is down in the
metrics and in `/readyz`; one that crashes `max_restarts` times in a row is given up on,
and says so in the log, the metrics and health. Only a signal (or `stop()`) ends the
whole group.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ebbflow.config import SupervisionConfig
from ebbflow.metrics import Desc
from ebbflow.model import Sample
from ebbflow.plugins import Component

log = logging.getLogger("ebbflow.supervisor")


UP = Desc(
    "ebbflow_component_up",
    "1 while the component runs; 0 while it waits for a restart or was given up.",
    "gauge",
    ("component",),
)
RESTARTS = Desc(
    "ebbflow_component_restarts_total",
    "Restarts of a component after it crashed.",
    "counter",
    ("component",),
)
GIVEN_UP = Desc(
    "ebbflow_component_given_up",
    "1 when the component kept crashing and is no longer restarted.",
    "gauge",
    ("component",),
)


@dataclass
class ComponentStatus:
    up: bool = False
    restarts: int = 0
    crashes_in_a_row: int = 0
    given_up: bool = False
    last_error: str = ""


class Supervisor:
    def __init__(
        self,
        components: Sequence[Component],
        config: SupervisionConfig | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.components = list(components)
        self.config = config or SupervisionConfig()
        self.status = {c.name: ComponentStatus() for c in self.components}
        self._sleep = sleep
        self._monotonic = monotonic
        self._stop = asyncio.Event()
        self.on_hangup: Callable[[], None] | None = None  # SIGHUP: reload the config

    def stop(self) -> None:
        self._stop.set()

    def _hangup(self) -> None:
        if self.on_hangup is None:
            log.warning("SIGHUP: nothing to reload; running on")
            return
        try:
            self.on_hangup()
        except Exception:  # a reload that fails never stops ebbflow
            log.exception("SIGHUP: reloading the config failed; running on with the old one")

    async def _supervise(self, component: Component) -> None:
        status = self.status[component.name]
        delay = self.config.backoff_initial
        while True:
            began = self._monotonic()
            status.up = True
            try:
                await component.run()
                error: BaseException | None = None
                status.last_error = "returned while ebbflow was running"
            except asyncio.CancelledError:
                status.up = False
                raise
            except Exception as err:
                error = err
                status.last_error = f"{type(err).__name__}: {err}"
            status.up = False
            if self._monotonic() - began >= self.config.reset_after:
                status.crashes_in_a_row = 0
                delay = self.config.backoff_initial
            status.crashes_in_a_row += 1
            if status.crashes_in_a_row > self.config.max_restarts:
                status.given_up = True
                log.error(
                    "component %s crashed %d times in a row (%s): given up; ebbflow is not "
                    "ready until it is restarted",
                    component.name,
                    status.crashes_in_a_row,
                    status.last_error,
                    exc_info=error,
                )
                return
            log.error(
                "component %s crashed (%s); restarting in %gs",
                component.name,
                status.last_error,
                delay,
                exc_info=error,
            )
            await self._sleep(delay)
            delay = min(self.config.backoff_max, delay * 2)
            status.restarts += 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        installed = []
        # Every way of asking a process to stop stops it cleanly (the lease released, the
        # spools written); SIGHUP reloads the config, as Telegraf's service unit does.
        handlers = {sig: self.stop for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
        handlers[signal.SIGHUP] = self._hangup
        for sig, handler in handlers.items():
            try:
                loop.add_signal_handler(sig, handler)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._supervise(c), name=c.name) for c in self.components
                ]
                await self._stop.wait()
                log.info("stopping %d components", len(tasks))
                for task in tasks:
                    task.cancel()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    # -- health ----------------------------------------------------------------------------
    def problems(self) -> dict[str, str]:
        found = {}
        for name, status in self.status.items():
            if status.given_up:
                found[name] = f"given up after {status.crashes_in_a_row} crashes in a row: "
                found[name] += status.last_error
            elif not status.up:
                found[name] = f"down, waiting to restart: {status.last_error or 'not started'}"
        return found

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {name: asdict(status) for name, status in self.status.items()}

    def telemetry(self, now: float) -> Iterable[Sample]:
        for name, status in self.status.items():
            yield UP.sample(1.0 if status.up else 0.0, now, name)
            yield RESTARTS.sample(status.restarts, now, name)
            yield GIVEN_UP.sample(1.0 if status.given_up else 0.0, now, name)
