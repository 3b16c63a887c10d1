"""The status page's routes, added to the server that serves `/metrics` (the Prometheus
output's): `/` and `/service/<name>` (server-rendered, read-only), `/events` (their live
updates as server-sent events), `/api/status` and `/api/topology` (JSON), `/static/*`.

Live updates: each open page holds one event stream. A change the view observes is sent
within `COALESCE` seconds (changes that come together are sent once); with no change, the
page is sent again every `TICK` seconds so ages and cooldowns count down. One render per
page and version is shared by every stream. Streams are bounded (`MAX_STREAMS`, then 503)
and end when the server stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.resources
import json
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from .page import Pages
from .topology import topology
from .view import Status, StatusView

TICK = 2.0  # seconds between renders of an unchanged page (ages, cooldowns)
COALESCE = 0.1  # seconds to gather changes that come together into one render
MAX_STREAMS = 32  # open pages at once; more get 503 (each costs a render per change)
STATIC = {"page.css": "text/css", "live.js": "text/javascript"}


class StatusPages:
    def __init__(self, view: StatusView) -> None:
        self.view = view
        self.pages = Pages()
        self.streams = 0
        self.closing = asyncio.Event()
        self._cache: dict[str, tuple[tuple[int, int], str]] = {}
        self.static = {
            name: importlib.resources.files("ebbflow.web").joinpath("static", name).read_bytes()
            for name in STATIC
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_get("/service/{name:.+}", self.service)
        app.router.add_get("/events", self.events)
        app.router.add_get("/events/service/{name:.+}", self.events)
        app.router.add_get("/api/status", self.api_status)
        app.router.add_get("/api/topology", self.api_topology)
        app.router.add_get("/static/{file}", self.asset)
        app.on_shutdown.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        self.closing.set()

    # -- pages ---------------------------------------------------------------------------
    def _render(self, page: str, status: Status, live_only: bool) -> str:
        name = page.removeprefix("service:")
        if page == "index":
            return self.pages.index(status, live_only)
        return self.pages.service(status, name, self.view.store, live_only)

    def _live(self, page: str) -> tuple[int, str]:
        """The live part of a page now: one render per version and tick, shared."""
        key = (self.view.version, int(time.monotonic() / TICK))
        cached = self._cache.get(page)
        if cached is not None and cached[0] == key:
            return key[0], cached[1]
        if len(self._cache) > 4 * MAX_STREAMS:
            self._cache.clear()
        html = self._render(page, self.view.snapshot(), live_only=True)
        self._cache[page] = (key, html)
        return key[0], html

    async def index(self, _request: web.Request) -> web.Response:
        html = self.pages.index(self.view.snapshot())
        return _compressed(web.Response(text=html, content_type="text/html"))

    async def service(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        status = self.view.snapshot()
        html = self.pages.service(status, name, self.view.store)
        return _compressed(
            web.Response(
                text=html, content_type="text/html", status=200 if status.service(name) else 404
            )
        )

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(
            body=self.static[name],
            content_type=STATIC[name],
            headers={"Cache-Control": "max-age=300"},
        )

    # -- JSON ----------------------------------------------------------------------------
    async def api_status(self, _request: web.Request) -> web.Response:
        status = dataclasses.asdict(self.view.snapshot())
        return _compressed(web.json_response(status, dumps=_dumps))

    async def api_topology(self, _request: web.Request) -> web.Response:
        return _compressed(web.json_response(topology(self.view.snapshot()), dumps=_dumps))

    # -- live updates --------------------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name")
        page = "index" if name is None else f"service:{name}"
        if self.streams >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(text=f"more than {MAX_STREAMS} live pages open\n")
        since = _int(request.query.get("since", ""))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # a proxy in front must not hold them back
            }
        )
        self.streams += 1
        try:
            await response.prepare(request)
            await self._stream(response, page, since)
        except ConnectionResetError:
            pass  # the page was closed (a cancellation, the server stopping, goes on up)
        finally:
            self.streams -= 1
        return response

    async def _stream(self, response: web.StreamResponse, page: str, since: int | None) -> None:
        sent_at = time.monotonic() if since == self.view.version else 0.0
        while not self.closing.is_set():
            wait = TICK - (time.monotonic() - sent_at)
            if self.view.version == since and wait > 0:
                await _first(self.view.wakeup().wait(), self.closing.wait(), within=wait)
                if self.closing.is_set():
                    return
                if self.view.version != since:
                    await asyncio.sleep(COALESCE)
            since, html = self._live(page)
            await response.write(frame("live", since, html))
            sent_at = time.monotonic()


def _compressed(response: web.Response) -> web.Response:
    """gzip when the client takes it (a page of 1,000 containers: 286 KiB, 15 KiB gzipped)."""
    response.enable_compression()
    return response


def frame(event: str, version: int, data: str) -> bytes:
    """One server-sent event; each line of `data` its own `data:` line."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\nid: {version}\n{lines}\n".encode()


async def _first(*waits: Coroutine[Any, Any, object], within: float) -> None:
    """Until the first of `waits` is done, or `within` seconds."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


def _dumps(data: object) -> str:
    return json.dumps(data, indent=1, sort_keys=True)


__all__ = ["StatusPages", "frame"]
