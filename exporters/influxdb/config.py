"""Options of an InfluxDB output."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..http_tls import ClientTLS
from ..pipeline import DeliveryConfig


class InfluxConfig(DeliveryConfig):
    tls_config: ClientTLS | None = None
    url: str = Field("http://127.0.0.1:8086", pattern=r"^https?://")
    api: Literal["v1", "v2"] = "v2"
    org: str = ""
    bucket: str = "ebbflow"
    token: str = ""
    database: str = "ebbflow"
    retention_policy: str = ""
    username: str = ""
    password: str = ""
