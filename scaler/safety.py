"""Action safety shared by scaling and healing: one action at a time per service, and a
global rate limit so a storm of failures cannot turn into a storm of engine calls."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator

from ebbflow.model import ServiceKey

log = logging.getLogger("ebbflow.scaler")

RATE_WINDOW = 60.0


class ActionGate:
    def __init__(self, max_per_minute: int) -> None:
        self.max_per_minute = max_per_minute
        self._locks: dict[ServiceKey, asyncio.Lock] = {}
        self._started: collections.deque[float] = collections.deque()  # loop time
        self.rate_limited = 0  # actions that had to wait for the rate limit
        self._limited = False

    @contextlib.asynccontextmanager
    async def turn(self, service: ServiceKey) -> AsyncIterator[None]:
        """The service's turn: every other action on it waits until this one is done."""
        async with self._locks.setdefault(service, asyncio.Lock()):
            await self._admit(service)
            yield

    async def _admit(self, service: ServiceKey) -> None:
        loop = asyncio.get_running_loop()
        waited = False
        while True:
            now = loop.time()
            while self._started and now - self._started[0] >= RATE_WINDOW:
                self._started.popleft()
            if len(self._started) < self.max_per_minute:
                self._started.append(now)
                if self._limited and not waited:
                    self._limited = False
                    log.info("action rate back under %d per minute", self.max_per_minute)
                return
            if not waited:
                self.rate_limited += 1
                waited = True
                if not self._limited:
                    self._limited = True
                    log.warning(
                        "action rate limit reached (%d per minute): %s waits",
                        self.max_per_minute,
                        service,
                    )
            await asyncio.sleep(RATE_WINDOW - (now - self._started[0]))
