"""One HTTP listener under a web config: what every server of ebbflow shares (the
Prometheus output's `/metrics` and status page, the remote-write receiver). TLS, basic
auth and headers as the web config says, followed while serving (`live.py`), and the
warning when it listens beyond loopback with no authentication.

Its owner builds the aiohttp app with `middlewares()`, then `open`s the listener on a
runner and runs `follow` beside its own work.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web

from ebbflow.file_watch import CHECK_EVERY
from ebbflow.metrics import Desc
from ebbflow.model import Sample

from .auth import BasicAuth, headers_middleware
from .live import LiveWebConfig

log = logging.getLogger("ebbflow.web")

AUTH_REJECTED = Desc(
    "ebbflow_http_auth_rejected_total",
    "Requests refused for missing or wrong basic auth credentials (the web config's), by server.",
    "counter",
    ("server",),
)
Middleware = Callable[..., Awaitable[web.StreamResponse]]


def loopback(host: str) -> bool:
    """Whether the address reaches only this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name, "" or 0.0.0.0: beyond loopback


class Listener:
    def __init__(
        self, server: str, host: str, port: int, web: LiveWebConfig | None, shows: str
    ) -> None:
        """`server` names it in metrics and logs; `shows` says, for the warning, what
        anyone who reaches it unauthenticated could see or do."""
        self.server, self.host, self.port, self.web, self.shows = server, host, port, web, shows
        # With a web config, auth stays in the chain: users may be added while it runs.
        self.auth = BasicAuth(web.config.basic_auth_users) if web is not None else None
        self.bound: tuple[str, int] | None = None

    @property
    def tls(self) -> ssl.SSLContext | None:
        return self.web.tls if self.web is not None else None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def authenticates(self) -> bool:
        return self.auth is not None and bool(self.auth.users)

    def middlewares(self) -> list[Middleware]:
        if (live := self.web) is None or self.auth is None:
            return []
        return [
            headers_middleware(lambda: live.config.http_server_config.headers),
            self.auth.middleware,
        ]

    async def open(self, runner: web.AppRunner) -> web.TCPSite:
        port = self.bound[1] if self.bound else self.port  # port 0: the one it got first
        site = web.TCPSite(runner, self.host or None, port, ssl_context=self.tls)
        await site.start()
        if runner.addresses:
            self.bound = tuple(runner.addresses[-1][:2])
        self._said_where()
        return site

    def _said_where(self) -> None:
        log.info(
            "%s: serving on %s://%s:%s%s%s",
            self.server,
            self.scheme,
            self.host,
            self.bound[1] if self.bound else self.port,
            " (TLS)" if self.tls is not None else "",
            " (basic auth)" if self.authenticates else "",
        )
        if not loopback(self.host) and not self.authenticates:
            log.warning(
                "%s: listening on %s, beyond loopback, with no authentication: %s; bind to "
                "127.0.0.1, or give a web config file (web_config_file: TLS and basic auth)",
                self.server,
                self.host or "every address",
                self.shows,
            )

    async def follow(self, runner: web.AppRunner, site: web.TCPSite) -> None:
        """The web config's files looked at every second; new users and headers apply to
        the next request, new TLS settings to the next connection (the listener is opened
        again on the same port; connections already open finish on the old settings)."""
        if self.web is None or self.auth is None:  # both or neither: no web config
            return
        while True:
            await asyncio.sleep(CHECK_EVERY)
            tls_changed = await asyncio.to_thread(self.web.check)
            self.auth.set_users(self.web.config.basic_auth_users)
            if tls_changed:
                await site.stop()
                site = await self.open(runner)

    def telemetry(self, now: float) -> Iterable[Sample]:
        if self.auth is not None:
            yield AUTH_REJECTED.sample(self.auth.rejected, now, self.server)
        if self.web is not None:
            yield from self.web.telemetry(now, self.server)


def web_config(path: Path | None, where: str) -> LiveWebConfig | None:
    """A plugin's `web_config_file` option, read (a bad file fails the start)."""
    return None if path is None else LiveWebConfig(path, where)


__all__ = ["AUTH_REJECTED", "Listener", "loopback", "web_config"]
