"""The base of push outputs that POST each batch (InfluxDB, remote write)."""

from __future__ import annotations

import ssl

import aiohttp

from .http_tls import ClientTLS
from .pipeline import BufferedOutput


class HttpOutput(BufferedOutput):
    """A push output that POSTs each batch: one aiohttp session for its life, over the
    `tls_config` context when it has one (`tls`)."""

    _session: aiohttp.ClientSession | None = None
    tls: ssl.SSLContext | None = None

    def use_tls(self, config: ClientTLS | None, where: str) -> None:
        """The section's `tls_config`, loaded now: a bad file fails the start."""
        self.tls = config.context(where) if config is not None else None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self.tls) if self.tls is not None else None
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if self._session is not None:
                await self._session.close()
