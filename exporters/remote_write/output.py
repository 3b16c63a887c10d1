"""The Prometheus remote-write output."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable

from ebbflow.bus import Bus
from ebbflow.model import Sample
from ebbflow.names import SENDER_HEADER

from ..http_output import HttpOutput
from ..pipeline import DeliveryOptions, http_error
from .config import RemoteWriteConfig
from .protobuf import compressed_write_request

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "ebbflow",
}


class RemoteWriteOutput(HttpOutput):
    def __init__(
        self,
        bus: Bus,
        name: str,
        config: RemoteWriteConfig,
        options: DeliveryOptions,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(bus, options, clock, name)
        self.config = config
        self.headers = HEADERS | {SENDER_HEADER: config.sender or socket.gethostname()[:64]}
        self.headers |= config.headers
        if config.bearer_token:
            self.headers["Authorization"] = f"Bearer {config.bearer_token}"
        if config.username:
            token = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"

    async def send(self, samples: list[Sample]) -> None:
        body = compressed_write_request(samples)
        async with self.session.post(self.config.url, data=body, headers=self.headers) as resp:
            if resp.status >= 300:
                raise http_error(
                    self.config.url, resp.status, await resp.text(), resp.headers.get("Retry-After")
                )
