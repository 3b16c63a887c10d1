"""The `/metrics` endpoint: an aiohttp server over the snapshot."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import logging
import ssl
from collections.abc import Iterable

from aiohttp import web

from ebbflow.bus import Bus
from ebbflow.health import Health
from ebbflow.metrics import Desc
from ebbflow.model import Sample, SampleBatch
from ebbflow.web.auth import BasicAuth, headers_middleware
from ebbflow.web.live import CHECK_EVERY, LiveWebConfig
from ebbflow.web.routes import StatusPages

from .exposition import CONTENT_TYPE, Exposition
from .snapshot import Snapshot

log = logging.getLogger("ebbflow.exporters.prometheus")


SCRAPES = Desc("ebbflow_prometheus_scrapes_total", "Scrapes of the /metrics endpoint.", "counter")
SERIES = Desc("ebbflow_prometheus_series", "Series held for the /metrics endpoint.")
PAGE_STREAMS = Desc(
    "ebbflow_status_page_streams", "Status pages open now, each holding a live update stream."
)
AUTH_REJECTED = Desc(
    "ebbflow_http_auth_rejected_total",
    "Requests refused for missing or wrong basic auth credentials (the web config's).",
    "counter",
)


def loopback(host: str) -> bool:
    """Whether the address reaches only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, "" or 0.0.0.0: beyond loopback


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _dumps(data: object) -> str:
    return json.dumps(data, indent=1, sort_keys=True)


class PrometheusOutput:
    name = "prometheus"

    def __init__(
        self,
        bus: Bus,
        listen: str,
        health: Health | None = None,
        max_label_value_length: int = 1024,
        pages: StatusPages | None = None,
        web: LiveWebConfig | None = None,
    ) -> None:
        self.host, self.port = split_listen(listen)
        self.pages, self.web = pages, web
        # With a web config, auth stays in the chain: users may be added while it runs.
        self.auth = BasicAuth(web.config.basic_auth_users) if web is not None else None
        self.health = health or Health()
        self.snapshot = Snapshot()
        self.exposition = Exposition(max_label_value_length)
        self.subscription = bus.subscribe("prometheus", SampleBatch, capacity=256)
        self.scrapes = 0
        self.bound: tuple[str, int] | None = None

    async def metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        text = self.exposition.render(self.snapshot.sources())
        headers = {"Content-Type": CONTENT_TYPE}
        if "gzip" in request.headers.get("Accept-Encoding", ""):  # Prometheus asks for it
            # Level 1: a sixteenth of the size for 70 ms per 100k series, off the loop.
            body = await asyncio.to_thread(gzip.compress, text, 1)
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=body, headers=headers)
        return web.Response(body=text, headers=headers)

    async def index(self, _request: web.Request) -> web.Response:
        return web.Response(
            text='ebbflow: <a href="/metrics">/metrics</a>, <a href="/readyz">/readyz</a>, '
            '<a href="/healthz">/healthz</a>\n',
            content_type="text/html",
        )

    async def healthz(self, _request: web.Request) -> web.Response:
        """The process serves: nothing more (a liveness check)."""
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        """Every part works: 200, else 503 with what is wrong, by part."""
        report = self.health.report()
        return web.json_response(
            report.as_dict(), status=200 if report.ready else 503, dumps=_dumps
        )

    @property
    def tls(self) -> ssl.SSLContext | None:
        return self.web.tls if self.web is not None else None

    @property
    def authenticates(self) -> bool:
        return self.auth is not None and bool(self.auth.users)

    def app(self) -> web.Application:
        middlewares = []
        if (live := self.web) is not None:
            middlewares.append(headers_middleware(lambda: live.config.http_server_config.headers))
        if self.auth is not None:
            middlewares.append(self.auth.middleware)
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        if self.pages is not None:
            self.pages.add_routes(app)  # `/`, the status page, and its API
        else:
            app.router.add_get("/", self.index)
        return app

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    async def run(self) -> None:
        # Open status pages hold a stream each; they end on shutdown, so none waits long.
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = await self._open(runner, self.port)
            self._said_where()
            async with asyncio.TaskGroup() as tasks:
                if self.web is not None:
                    tasks.create_task(self._follow_web_config(runner, site))
                async for event in self.subscription:
                    if isinstance(event, SampleBatch):
                        self.snapshot.update(event)
        finally:
            await asyncio.shield(runner.cleanup())

    async def _open(self, runner: web.AppRunner, port: int) -> web.TCPSite:
        site = web.TCPSite(runner, self.host, port, ssl_context=self.tls)
        await site.start()
        if runner.addresses:
            self.bound = tuple(runner.addresses[-1][:2])
        return site

    def _said_where(self) -> None:
        log.info(
            "serving /metrics and the status page on %s://%s:%s/%s%s",
            self.scheme,
            self.host,
            self.bound[1] if self.bound else self.port,
            " (TLS)" if self.tls is not None else "",
            " (basic auth)" if self.authenticates else "",
        )
        if not loopback(self.host) and not self.authenticates:
            log.warning(
                "listening on %s, beyond loopback: /metrics, /readyz and the status page "
                "show every container's name, image and chosen labels to whoever reaches "
                "it, with no authentication; bind to 127.0.0.1, or give a web config file "
                "(outputs.prometheus.web_config_file: TLS and basic auth)",
                self.host or "every address",
            )

    async def _follow_web_config(self, runner: web.AppRunner, site: web.TCPSite) -> None:
        """The web config's files looked at every second; new users and headers apply to
        the next request, new TLS settings to the next connection (the listener is opened
        again on the same port; connections already open finish on the old settings)."""
        assert self.web is not None and self.auth is not None
        while True:
            await asyncio.sleep(CHECK_EVERY)
            tls_changed = await asyncio.to_thread(self.web.check)
            self.auth.set_users(self.web.config.basic_auth_users)
            if tls_changed:
                port = self.bound[1] if self.bound else self.port
                await site.stop()
                site = await self._open(runner, port)
                self._said_where()

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield SCRAPES.sample(self.scrapes, now)
        yield SERIES.sample(self.snapshot.series_count(), now)
        if self.pages is not None:
            yield PAGE_STREAMS.sample(self.pages.streams, now)
        if self.auth is not None:
            yield AUTH_REJECTED.sample(self.auth.rejected, now)
        if self.web is not None:
            yield from self.web.telemetry(now)
