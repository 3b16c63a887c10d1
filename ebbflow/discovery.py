"""Which containers exist: a listing at start, then Docker's event stream.

Events are subscribed to before the listing so nothing that happens in between is missed.
Inspect results are cached per container and refreshed only by events. When the stream
breaks for any reason (the engine restarted, the connection dropped, a call timed out),
discovery reconnects with backoff and re-lists, publishing what started and what went
away meanwhile. "engine unavailable" and "engine recovered" are logged once each.

The inventory is the core's, not an input's: the rules, healing, the reconciler and every
label-driven input (probes, scrape) read it, so it runs whichever inputs are enabled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import aiodocker
import aiohttp

from ebbflow.bus import Bus
from ebbflow.docker_api import DockerHandle
from ebbflow.logs import describe_error
from ebbflow.model import (
    FOUND_EXITED,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Sample,
    labels_of,
)
from ebbflow.nodes import Nodes

log = logging.getLogger("ebbflow.discovery")

WATCHED_EVENTS = ("start", "die", "stop", "destroy", "health_status")


class Discovery:
    """Keeps `containers` (running ones, by id) and publishes every change on the bus."""

    def __init__(
        self,
        docker: DockerHandle,
        bus: Bus,
        clock: Callable[[], float],
        max_backoff: float = 30.0,
    ) -> None:
        self.docker = docker
        self.bus = bus
        self.clock = clock
        self.max_backoff = max_backoff
        self.containers: dict[str, ContainerInfo] = {}
        self.connected = False
        self.listed_exited = False
        self.problem = ""  # why the engine is unavailable; "" while it answers
        self.synced = asyncio.Event()

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
                self.containers[cid] = info
                self.bus.publish(ContainerEvent(ContainerEventKind.PRESENT, info, now))
        if not self.listed_exited:
            # Once per process: containers that exited while no ebbflow watched. Healing
            # continues a crash loop's backoff for those it was recovering.
            self.listed_exited = True
            for info in await self.docker.exited_containers():
                self.bus.publish(ContainerEvent(ContainerEventKind.DIE, info, now, FOUND_EXITED))
        self.synced.set()

    async def handle(self, event: Mapping[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        kind_name = action.split(":", 1)[0]
        if kind_name not in WATCHED_EVENTS:
            return
        cid = str(event.get("id") or (event.get("Actor") or {}).get("ID", ""))
        now = self.clock()
        kind = ContainerEventKind(kind_name)
        detail = action.split(":", 1)[1].strip() if ":" in action else ""
        if kind is ContainerEventKind.START:
            info = await self.docker.inspect(cid)
            if info is not None and info.running:
                self.containers[cid] = info
                self.bus.publish(ContainerEvent(kind, info, now))
        elif kind in (ContainerEventKind.DIE, ContainerEventKind.DESTROY):
            info = self.containers.pop(cid, None)
            if kind is ContainerEventKind.DESTROY:
                self.docker.forget(cid)
            attrs = (event.get("Actor") or {}).get("Attributes") or {}
            if kind is ContainerEventKind.DIE and "exitCode" in attrs:
                detail = f"exited with code {attrs['exitCode']}"
                try:
                    detail = await self.docker.exit_reason(cid) or detail
                except (aiodocker.DockerError, aiohttp.ClientError, TimeoutError) as err:
                    log.debug("container %s: no exit reason: %s", cid[:12], err)
            if info is None and kind is ContainerEventKind.DIE:
                # Exited before its start was read (a crash at once): still inspectable.
                try:
                    info = await self.docker.inspect(cid)
                except (aiodocker.DockerError, aiohttp.ClientError, TimeoutError) as err:
                    log.debug("container %s: not inspectable: %s", cid[:12], err)
            if info is None:
                info = ContainerInfo(
                    id=cid,
                    name=attrs.get("name", cid[:12]),
                    image=attrs.get("image", ""),
                    running=False,
                    node=self.docker.node,
                )
            self.bus.publish(ContainerEvent(kind, info, now, detail))
        elif kind is ContainerEventKind.STOP:
            # After its die: the container was stopped on purpose, through the API.
            attrs = (event.get("Actor") or {}).get("Attributes") or {}
            info = ContainerInfo(
                id=cid,
                name=attrs.get("name", cid[:12]),
                image=attrs.get("image", ""),
                labels=MappingProxyType(
                    {k: v for k, v in attrs.items() if k not in ("name", "image")}
                ),
                running=False,
                node=self.docker.node,
            )
            self.bus.publish(ContainerEvent(kind, info, now, "stopped through the API"))
        elif kind is ContainerEventKind.HEALTH and cid in self.containers:
            self.bus.publish(ContainerEvent(kind, self.containers[cid], now, detail))

    async def _stream(self) -> None:
        client = self.docker.client
        subscriber = client.events.subscribe(create_task=False)  # type: ignore[no-untyped-call]
        filters = json.dumps({"type": ["container"], "event": list(WATCHED_EVENTS)})
        async with asyncio.TaskGroup() as group:
            reader = group.create_task(client.events.run(filters=filters))
            await self.sync()
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
            while (event := await subscriber.get()) is not None:
                await self.handle(event)
            await reader  # re-raises why the stream ended, if it failed

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

    def __init__(self, nodes: Nodes, bus: Bus, clock: Callable[[], float]) -> None:
        self.discoveries = [Discovery(handle, bus, clock) for handle in nodes.handles.values()]
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
        yield Sample(
            "ebbflow_containers_watched",
            sum(len(d.containers) for d in self.discoveries),
            (),
            now,
            "gauge",
            "Running containers discovered on every node.",
        )
        for discovery in self.discoveries:
            yield Sample(
                "ebbflow_docker_events_connected",
                1.0 if discovery.connected else 0.0,
                labels_of({"node": discovery.docker.node}) if discovery.docker.node else (),
                now,
                "gauge",
                "1 while the Docker event stream is connected.",
            )
