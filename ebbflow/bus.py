"""A bounded publish/subscribe bus.

Publishing never waits: each subscriber has its own bounded queue, and when one is full
its oldest event is dropped and counted. A slow output therefore never slows collection
or decisions, and fresh data wins over stale data. Every queue reports its statistics.

An observer is called synchronously inside `publish`, before any subscriber's queue gets
the event: the service catalog observes container events that way, so a subscriber that
handles an event always finds the catalog already up to date with it. Observers must be
quick and must not publish; one that raises is logged and counted, never the publisher's
problem.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ebbflow.metrics import Desc
from ebbflow.model import Event, Sample

log = logging.getLogger("ebbflow.bus")

PUBLISHED = Desc("ebbflow_bus_published_total", "Events published on the internal bus.", "counter")
DEPTH = Desc(
    "ebbflow_bus_queue_depth", "Events waiting in a subscriber's queue.", "gauge", ("subscriber",)
)
CAPACITY = Desc(
    "ebbflow_bus_queue_capacity", "Bound of a subscriber's queue.", "gauge", ("subscriber",)
)
DELIVERED = Desc(
    "ebbflow_bus_delivered_total",
    "Events a subscriber has taken from its queue.",
    "counter",
    ("subscriber",),
)
DROPPED = Desc(
    "ebbflow_bus_dropped_total",
    "Events dropped because a subscriber's queue was full.",
    "counter",
    ("subscriber",),
)
OBSERVER_ERRORS = Desc(
    "ebbflow_bus_observer_errors_total",
    "Events an observer (the service catalog) or a subscription's filter raised on; the "
    "event was still delivered.",
    "counter",
)

_CLOSED = object()


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    name: str
    depth: int
    capacity: int
    delivered: int
    dropped: int


class Subscription:
    """One subscriber's queue. Iterate it to receive events until the bus closes."""

    def __init__(
        self,
        name: str,
        capacity: int,
        types: tuple[type, ...],
        accept: Callable[[Event], bool] | None = None,
    ) -> None:
        self.name = name
        self.capacity = capacity
        self.types = types
        self.accept = accept
        self._queue: collections.deque[object] = collections.deque()
        self._ready = asyncio.Event()
        self.delivered = 0
        self.dropped = 0

    def wants(self, event: Event) -> bool:
        if self.types and not isinstance(event, self.types):
            return False
        return self.accept is None or self.accept(event)

    def offer(self, item: object) -> None:
        if item is not _CLOSED and len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(item)
        self._ready.set()

    async def get(self) -> Event | None:
        """The next event, or None once the bus is closed and the queue is drained."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        item = self._queue[0]
        if item is _CLOSED:
            return None
        self._queue.popleft()
        self.delivered += 1
        return item  # type: ignore[return-value]

    def get_nowait(self) -> Event | None:
        if not self._queue or self._queue[0] is _CLOSED:
            return None
        self.delivered += 1
        return self._queue.popleft()  # type: ignore[return-value]

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while (event := await self.get()) is not None:
            yield event

    def stats(self) -> SubscriptionStats:
        depth = sum(1 for item in self._queue if item is not _CLOSED)
        return SubscriptionStats(self.name, depth, self.capacity, self.delivered, self.dropped)


class Bus:
    def __init__(self, default_capacity: int = 1024) -> None:
        self.default_capacity = default_capacity
        self._subscriptions: list[Subscription] = []
        self._observers: list[tuple[tuple[type, ...], Callable[[Any], None]]] = []
        self.published = 0
        self.observer_errors = 0
        self._closed = False

    def observe(self, callback: Callable[[Any], None], *types: type) -> None:
        """Call `callback(event)` inside `publish` for every event of the given types,
        before any subscriber's queue gets it (see the module's doc)."""
        self._observers.append((types, callback))

    def subscribe(
        self,
        name: str,
        *types: type,
        capacity: int | None = None,
        accept: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        """Subscribe to events of the given types (all events when none are given) that
        `accept` takes, when given: an event it refuses is never queued, so it neither
        wakes the subscriber nor counts against its bound."""
        sub = Subscription(name, capacity or self.default_capacity, types, accept)
        self._subscriptions.append(sub)
        if self._closed:
            sub.offer(_CLOSED)
        return sub

    def publish(self, event: Event) -> None:
        self.published += 1
        for types, callback in self._observers:
            if isinstance(event, types):
                try:
                    callback(event)
                except Exception:
                    self.observer_errors += 1
                    log.exception("an observer of %s raised", type(event).__name__)
        for sub in self._subscriptions:
            try:
                wanted = sub.wants(event)
            except Exception:  # a broken filter lets everything through, and says so
                self.observer_errors += 1
                log.exception("the filter of subscription %s raised", sub.name)
                wanted = True
            if wanted:
                sub.offer(event)

    def close(self) -> None:
        """End every subscription once its queue is drained."""
        self._closed = True
        for sub in self._subscriptions:
            sub.offer(_CLOSED)

    def stats(self) -> list[SubscriptionStats]:
        return [sub.stats() for sub in self._subscriptions]

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield PUBLISHED.sample(self.published, now)
        yield OBSERVER_ERRORS.sample(self.observer_errors, now)
        for st in self.stats():
            yield DEPTH.sample(st.depth, now, st.name)
            yield CAPACITY.sample(st.capacity, now, st.name)
            yield DELIVERED.sample(st.delivered, now, st.name)
            yield DROPPED.sample(st.dropped, now, st.name)
