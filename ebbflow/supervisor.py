"""Runs every component in one TaskGroup and stops them all cleanly on SIGINT/SIGTERM.

A component that raises is cut off with a log line; the others keep running. Only a
signal (or `stop()`) ends the whole group.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

from ebbflow.plugins import Component

log = logging.getLogger("ebbflow.supervisor")


class Supervisor:
    def __init__(self, components: Sequence[Component]) -> None:
        self.components = list(components)
        self.failed: dict[str, str] = {}
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def _guarded(self, component: Component) -> None:
        try:
            await component.run()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.failed[component.name] = repr(err)
            log.exception("component %s failed and was cut off: %r", component.name, err)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._guarded(c), name=c.name) for c in self.components]
                await self._stop.wait()
                log.info("stopping %d components", len(tasks))
                for task in tasks:
                    task.cancel()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
