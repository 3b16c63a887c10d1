"""The InfluxDB output: v2 (`/api/v2/write`, org/bucket/token) and v1 (`/write`, db/rp).

Written with aiohttp rather than influxdb-client: the pipeline needs each answer's status
and `Retry-After` to retry, split or drop, and Debian's influxd 1.6 has no v2 endpoint.
"""

from __future__ import annotations

from collections.abc import Callable

from ebbflow.bus import Bus
from ebbflow.model import Sample

from ..http_output import HttpOutput
from ..pipeline import DeliveryOptions, http_error
from ..serializers import line_protocol
from .config import InfluxConfig


class InfluxOutput(HttpOutput):
    def __init__(
        self,
        bus: Bus,
        name: str,
        config: InfluxConfig,
        options: DeliveryOptions,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(bus, options, clock, name)
        self.config = config

    def endpoint(self) -> tuple[str, dict[str, str], dict[str, str]]:
        """(url, query, headers) for a write."""
        c = self.config
        base = c.url.rstrip("/")
        if c.api == "v2":
            headers = {"Authorization": f"Token {c.token}"} if c.token else {}
            return (
                f"{base}/api/v2/write",
                {"org": c.org, "bucket": c.bucket, "precision": "ns"},
                headers,
            )
        query = {"db": c.database, "precision": "ns"}
        if c.retention_policy:
            query["rp"] = c.retention_policy
        if c.username:
            query |= {"u": c.username, "p": c.password}
        return f"{base}/write", query, {}

    async def send(self, samples: list[Sample]) -> None:
        url, query, headers = self.endpoint()
        body = line_protocol(samples).encode()
        async with self.session.post(
            url,
            params=query,
            data=body,
            headers={**headers, "Content-Type": "text/plain; charset=utf-8"},
        ) as resp:
            if resp.status < 300:
                return
            raise http_error(url, resp.status, await resp.text(), resp.headers.get("Retry-After"))
