"""The page's routes on a real aiohttp server: the page without JavaScript, live updates
as server-sent events (sent on a change, within the coalescing delay), the bound on open
streams, an unknown service, the static assets, and a hostile label's text clipped."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType

import aiohttp
import pytest
from aiohttp import web

from ebbflow.bus import Bus
from ebbflow.catalog import ServiceCatalog
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.model import ContainerEvent, ContainerEventKind, ContainerInfo
from ebbflow.nodes import Nodes
from ebbflow.state import DecisionStore
from ebbflow.web import routes
from ebbflow.web.routes import StatusPages
from ebbflow.web.view import MAX_TEXT, StatusView


def container(cid: str, labels: dict[str, str]) -> ContainerInfo:
    return ContainerInfo(cid * 12, f"web-{cid}", "img", MappingProxyType(labels),
                         started_at=time.time() - 100)  # fmt: skip


def start(bus: Bus, info: ContainerInfo) -> None:
    bus.publish(ContainerEvent(ContainerEventKind.START, info, 0))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, Bus, StatusPages]]:
    bus = Bus()
    catalog = ServiceCatalog(bus, RulesConfig(), ScopeConfig())
    view = StatusView(bus, Nodes([DockerHandle("unix:///nonexistent.sock", 1.0)]))
    store = DecisionStore(tmp_path / "state.db")
    view.attach(catalog, store)
    pages = StatusPages(view)
    app = web.Application()
    pages.add_routes(app)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", bus, pages
    finally:
        await runner.cleanup()
        store.close()


async def next_event(response: aiohttp.ClientResponse, within: float) -> tuple[int, str]:
    """(id, data) of the next server-sent event."""
    ident, data = -1, []
    async with asyncio.timeout(within):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("id: "):
                ident = int(line[4:])
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                return ident, "\n".join(data)


async def test_the_page_works_without_javascript(
    served: tuple[str, Bus, StatusPages],
) -> None:
    url, bus, _ = served
    bus.publish(
        ContainerEvent(ContainerEventKind.START, container("a", {"ebbflow.service": "web"}), 0)
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/") as response:
            assert response.status == 200
            html = await response.text()
        assert 'data-name="web-a"' in html  # rendered on the server, whole
        assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
        for asset, kind in (("page.css", "text/css"), ("live.js", "text/javascript")):
            async with session.get(f"{url}/static/{asset}") as response:
                assert response.status == 200 and response.content_type == kind
        async with session.get(url + "/static/../routes.py") as response:
            assert response.status == 404
        async with session.get(url + "/service/label:nothing") as response:
            assert response.status == 404
            assert "label:nothing: not a service this instance knows now" in await response.text()
        async with session.get(url + "/api/status") as response:
            status = json.loads(await response.text())
        assert [s["name"] for s in status["services"]] == ["label:web"]


async def test_a_change_is_streamed_at_once(served: tuple[str, Bus, StatusPages]) -> None:
    url, bus, pages = served
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/events?since={pages.view.version}") as response,
    ):
        assert response.headers["Content-Type"] == "text/event-stream"
        await asyncio.sleep(0.2)
        started = time.monotonic()
        bus.publish(
            ContainerEvent(ContainerEventKind.START, container("b", {"ebbflow.service": "api"}), 0)
        )
        ident, data = await next_event(response, within=routes.TICK)
        assert time.monotonic() - started < routes.TICK  # sent for the change, not the tick
        assert ident == pages.view.version
        assert 'data-name="web-b"' in data and "<html" not in data  # the live part only
        # Nothing changes: the page comes again at the next tick (ages count down).
        again, _ = await next_event(response, within=routes.TICK + 2)
        assert again == ident


async def test_open_streams_are_bounded(
    served: tuple[str, Bus, StatusPages], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, pages = served
    monkeypatch.setattr(routes, "MAX_STREAMS", 2)
    async with aiohttp.ClientSession() as session:
        first = await session.get(url + "/events")
        second = await session.get(url + "/events")
        third = await session.get(url + "/events")
        assert (first.status, second.status, third.status) == (200, 200, 503)
        assert "more than 2 live pages open" in await third.text()
        first.close()
        await asyncio.sleep(0.3)  # the server sees the stream gone at its next write
        for _ in range(50):
            if pages.streams < 2:
                break
            await asyncio.sleep(0.1)
        fourth = await session.get(url + "/events")
        assert fourth.status == 200
        second.close(), fourth.close()


async def test_hostile_text_is_clipped(served: tuple[str, Bus, StatusPages]) -> None:
    url, bus, pages = served
    huge = "x" * 100_000
    labels = {"ebbflow.service": "big", "ebbflow.scale.max_replicas": huge}
    start(bus, container("c", labels))
    (service,) = pages.view.snapshot().services
    assert service.errors and all(len(e) <= MAX_TEXT for e in service.errors)
    async with aiohttp.ClientSession() as session, session.get(url + "/") as response:
        assert len(await response.text()) < 20_000
