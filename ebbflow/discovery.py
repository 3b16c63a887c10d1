"""Which containers exist: a listing at start, then Docker's event stream.

Events are subscribed to before the listing so nothing that happens in between is missed.
Inspect results are cached per container and refreshed only by events. When the stream
breaks for any reason (the engine restarted, the connection dropped, a call timed out),
discovery reconnects with backoff and re-lists, publishing what started and what went
away meanwhile. "engine unavailable" and "engine recovered" are logged once each.

Silence is not health: while connected, the engine is asked to answer (`/_ping`) every
`check_interval` seconds within `timeout`; one that does not is unavailable at once (the
stream is dropped and connected again), so a hung engine shows in `/readyz` within
`timeout + check_interval` seconds. Every read is bounded (`docker.limits`): an event line
too long to hold is skipped and counted, and its container inspected instead
(ebbflow/docker_events.py). Each connection is a session, announced on the bus
(`EngineConnection`), so what happened just before a loss is read as the outage it may
be, never as someone's intent.

The inventory is the core's, not an input's: the rules, healing, the reconciler and every
label-driven input (probes, scrape) read it, so it runs whichever inputs are enabled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import aiodocker
import aiohttp

from ebbflow.bus import Bus
from ebbflow.docker_api import DockerHandle, bounded_labels
from ebbflow.docker_events import BodyTooLargeError, StreamCounts, events
from ebbflow.logs import describe_error
from ebbflow.metrics import Desc
from ebbflow.model import (
    FOUND_EXITED,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    EngineConnection,
    Sample,
)
from ebbflow.nodes import Nodes

log = logging.getLogger("ebbflow.discovery")

WATCHED_EVENTS = ("start", "die", "stop", "destroy", "health_status")
READ_ERRORS = (aiodocker.DockerError, aiohttp.ClientError, TimeoutError, ValueError)

WATCHED = Desc("ebbflow_containers_watched", "Running containers discovered on every node.")
CONNECTED = Desc(
    "ebbflow_docker_events_connected",
    "1 while the Docker event stream is connected and the engine answers.",
    "gauge",
    ("node",),
)
SKIPPED = Desc(
    "ebbflow_docker_events_skipped_total",
    "Event lines skipped: too long to hold (their container is inspected instead) or not JSON.",
    "counter",
    ("node", "reason"),
)
CONTAINERS_SKIPPED = Desc(
    "ebbflow_docker_containers_skipped_total",
    "Containers left out because the engine's answer about them was past the bound.",
    "counter",
    ("node",),
)
LABELS_LEFT_OUT = Desc(
    "ebbflow_docker_labels_left_out_total",
    "Container labels left out for passing the label bounds (docker.limits).",
    "counter",
    ("node",),
)


class EngineUnresponsiveError(Exception):
    """The engine stopped answering while its stream stayed open."""


class Discovery:
    """Keeps `containers` (running ones, by id) and publishes every change on the bus."""

    def __init__(
        self,
        docker: DockerHandle,
        bus: Bus,
        clock: Callable[[], float],
        max_backoff: float = 30.0,
        check_interval: float = 2.0,
    ) -> None:
        self.docker = docker
        self.bus = bus
        self.clock = clock
        self.max_backoff = max_backoff
        self.check_interval = check_interval
        self.containers: dict[str, ContainerInfo] = {}
        self.connected = False
        self.listed_exited = False
        self.problem = ""  # why the engine is unavailable; "" while it answers
        self.synced = asyncio.Event()
        self.session = 0  # connections so far; each one listed the engine again
        self.counts = StreamCounts()
        self.containers_skipped = 0
        self.labels_left_out = 0
        self._label_errors_logged: collections.OrderedDict[str, None] = collections.OrderedDict()

    # -- the inventory ---------------------------------------------------------------------
    async def sync(self) -> None:
        """Re-list and publish the difference with what we knew."""
        current = {c.id: c for c in await self.docker.running_containers()}
        now = self.clock()
        for cid in list(self.containers):
            if cid not in current:
                gone = self.containers.pop(cid)
                self.bus.publish(ContainerEvent(ContainerEventKind.DIE, gone, now, "missing"))
        for cid, info in current.items():
            if cid not in self.containers:
                self._seen(info)
                self.containers[cid] = info
                self.bus.publish(ContainerEvent(ContainerEventKind.PRESENT, info, now))
        if not self.listed_exited:
            # Once per process: containers that exited while no ebbflow watched. Healing
            # continues a crash loop's backoff for those it was recovering.
            self.listed_exited = True
            for info in await self.docker.exited_containers():
                self.bus.publish(ContainerEvent(ContainerEventKind.DIE, info, now, FOUND_EXITED))
        self.synced.set()

    def _seen(self, info: ContainerInfo) -> None:
        """Labels left out of a container are counted, and logged once per container."""
        if not info.label_errors or info.id in self._label_errors_logged:
            return
        self.labels_left_out += len(info.label_errors)
        self._label_errors_logged[info.id] = None
        while len(self._label_errors_logged) > 4096:
            self._label_errors_logged.popitem(last=False)
        log.warning(
            "container %s: %d label(s) left out: %s",
            info.name,
            len(info.label_errors),
            "; ".join(info.label_errors[:3]),
        )

    async def _inspect(self, cid: str) -> ContainerInfo | None:
        """None when it is gone, or its answer is past the bound (counted, logged)."""
        try:
            info = await self.docker.inspect(cid)
        except BodyTooLargeError as err:
            self.containers_skipped += 1
            log.warning("container %s left out: %s", cid[:12], err)
            return None
        if info is not None:
            self._seen(info)
        return info

    # -- events ----------------------------------------------------------------------------
    async def handle(self, event: Mapping[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        kind_name, _, rest = action.partition(":")
        if kind_name not in WATCHED_EVENTS:
            return
        cid = str(event.get("id") or (event.get("Actor") or {}).get("ID", ""))
        kind = ContainerEventKind(kind_name)
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        if kind is ContainerEventKind.START:
            await self._started(cid)
        elif kind in (ContainerEventKind.DIE, ContainerEventKind.DESTROY):
            await self._ended(cid, kind, attrs, rest.strip())
        elif kind is ContainerEventKind.STOP:
            self._stopped(cid, attrs)
        elif cid in self.containers:
            self.bus.publish(ContainerEvent(kind, self.containers[cid], self.clock(), rest.strip()))

    async def _started(self, cid: str) -> None:
        info = await self._inspect(cid)
        if info is not None and info.running:
            self.containers[cid] = info
            self.bus.publish(ContainerEvent(ContainerEventKind.START, info, self.clock()))

    async def _ended(
        self, cid: str, kind: ContainerEventKind, attrs: Mapping[str, Any], detail: str
    ) -> None:
        info = self.containers.pop(cid, None)
        if kind is ContainerEventKind.DESTROY:
            self.docker.forget(cid)
        if kind is ContainerEventKind.DIE and "exitCode" in attrs:
            detail = f"exited with code {attrs['exitCode']}"
            try:
                detail = await self.docker.exit_reason(cid) or detail
            except READ_ERRORS as err:
                log.debug("container %s: no exit reason: %s", cid[:12], err)
        if info is None and kind is ContainerEventKind.DIE:
            # Exited before its start was read (a crash at once): still inspectable.
            try:
                info = await self._inspect(cid)
            except READ_ERRORS as err:
                log.debug("container %s: not inspectable: %s", cid[:12], err)
        if info is None:
            info = ContainerInfo(
                id=cid,
                name=str(attrs.get("name", cid[:12]))[:256],
                image=str(attrs.get("image", ""))[:256],
                running=False,
                node=self.docker.node,
            )
        self.bus.publish(ContainerEvent(kind, info, self.clock(), detail))

    def _stopped(self, cid: str, attrs: Mapping[str, Any]) -> None:
        """After its die: the container was stopped through the API (someone meant it, or
        the engine is shutting down: the session says which, later)."""
        labels, _ = bounded_labels(
            {k: v for k, v in attrs.items() if k not in ("name", "image")}, self.docker.limits
        )
        info = ContainerInfo(
            id=cid,
            name=str(attrs.get("name", cid[:12]))[:256],
            image=str(attrs.get("image", ""))[:256],
            labels=MappingProxyType(labels),
            running=False,
            node=self.docker.node,
        )
        self.bus.publish(
            ContainerEvent(ContainerEventKind.STOP, info, self.clock(), "stopped through the API")
        )

    # -- the connection ----------------------------------------------------------------------
    async def _stream(self) -> None:
        filters = json.dumps({"type": ["container"], "event": list(WATCHED_EVENTS)})
        # No total deadline on the stream itself: the watchdog is its deadline.
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, connect=self.docker.timeout)
        async with contextlib.AsyncExitStack() as stack:
            # An engine that takes the connection and never answers: the opening's deadline.
            async with asyncio.timeout(self.docker.timeout):
                response = await stack.enter_async_context(
                    self.docker.client._query(
                        "events", "GET", params={"filters": filters}, timeout=timeout
                    )
                )
            await self.sync()
            self._connected()
            limit = self.docker.limits.max_event_bytes
            async with asyncio.TaskGroup() as group:
                watchdog = group.create_task(self._watchdog())
                async for event in events(response, limit, self.counts):
                    await self.handle(event)
                watchdog.cancel()

    def _connected(self) -> None:
        if self.problem:
            log.info(
                "engine recovered: %s answers again, %d running containers",
                self.docker.display,
                len(self.containers),
            )
        elif not self.connected:
            log.info(
                "discovery connected to %s: %d running containers",
                self.docker.display,
                len(self.containers),
            )
        self.connected, self.problem = True, ""
        self.session += 1
        self.bus.publish(
            EngineConnection(self.docker.node, True, self.session, "connected", self.clock())
        )

    async def _watchdog(self) -> None:
        """An open stream says nothing about an engine that stopped answering."""
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                async with asyncio.timeout(self.docker.timeout):
                    await self.docker.ping()
            except Exception as err:
                why = "timed out" if isinstance(err, TimeoutError) else describe_error(err)
                raise EngineUnresponsiveError(
                    f"no answer to a ping within {self.docker.timeout:g}s ({why})"
                ) from None

    async def run(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self._stream()
                reason = "event stream ended"
            except Exception as err:  # whatever broke the stream, the answer is to reconnect
                reason = describe_error(err)
            if self.connected:
                backoff = 1.0
                self.bus.publish(
                    EngineConnection(self.docker.node, False, self.session, reason, self.clock())
                )
            self.connected = False
            if not self.problem:
                log.warning(
                    "engine unavailable: %s: %s; reconnecting with backoff",
                    self.docker.display,
                    reason,
                )
            self.problem = reason
            await asyncio.sleep(backoff)
            backoff = min(self.max_backoff, backoff * 2)


class Inventory:
    """Discovery on every node, as one supervised core component."""

    name = "discovery"

    def __init__(
        self, nodes: Nodes, bus: Bus, clock: Callable[[], float], check_interval: float = 2.0
    ) -> None:
        self.discoveries = [
            Discovery(handle, bus, clock, check_interval=check_interval)
            for handle in nodes.handles.values()
        ]
        self.running = False

    @property
    def local(self) -> list[Discovery]:
        """The nodes on this machine, whose cgroups can be read from here."""
        return [d for d in self.discoveries if d.docker.local]

    @property
    def connected(self) -> bool:
        return all(d.connected for d in self.discoveries)

    def health_problem(self) -> str | None:
        for discovery in self.discoveries:
            if discovery.problem:
                return f"engine unavailable: {discovery.docker.display}: {discovery.problem}"
            if not discovery.connected and self.running:
                return f"engine {discovery.docker.display}: not connected yet"
        return None

    def dependencies(self) -> dict[str, str | None]:
        """Each engine: its event stream, and its answers within their deadline."""
        found: dict[str, str | None] = {}
        for d in self.discoveries:
            problem = d.problem or (
                None if d.connected or not self.running else "not connected yet"
            )
            found[f"engine {d.docker.display}"] = problem
        return found

    async def sync(self) -> None:
        """List the local nodes once (for `collect --once`, which runs no event stream)."""
        for discovery in self.local:
            await discovery.sync()

    async def run(self) -> None:
        self.running = True
        try:
            async with asyncio.TaskGroup() as group:
                for discovery in self.discoveries:
                    group.create_task(discovery.run())
        finally:
            self.running = False

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield WATCHED.sample(sum(len(d.containers) for d in self.discoveries), now)
        for d in self.discoveries:
            node = d.docker.node
            if node:
                yield CONNECTED.sample(1.0 if d.connected else 0.0, now, node)
            else:  # one engine: no node label, as before
                yield CONNECTED.labelled(1.0 if d.connected else 0.0, now, ())
            for reason, count in sorted(d.counts.skipped.items()):
                yield SKIPPED.sample(count, now, node, reason)
            yield CONTAINERS_SKIPPED.sample(d.containers_skipped, now, node)
            yield LABELS_LEFT_OUT.sample(d.labels_left_out, now, node)
