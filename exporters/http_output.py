"""The base of push outputs that POST each batch (InfluxDB, remote write)."""

from __future__ import annotations

import aiohttp

from .pipeline import BufferedOutput


class HttpOutput(BufferedOutput):
    """A push output that POSTs each batch: one aiohttp session for its life."""

    _session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if self._session is not None:
                await self._session.close()
