"""Options of a Prometheus remote-write output."""

from __future__ import annotations

from pydantic import Field

from ..http_tls import ClientTLS
from ..pipeline import DeliveryConfig


class RemoteWriteConfig(DeliveryConfig):
    tls_config: ClientTLS | None = None
    url: str = Field(
        "http://127.0.0.1:9090/api/v1/write",
        pattern=r"^https?://",
        description="Prometheus (with --web.enable-remote-write-receiver), VictoriaMetrics, "
        "Mimir, Thanos receive...",
    )
    bearer_token: str = ""
    username: str = ""
    password: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    sender: str = Field(
        "",
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]*$",
        description="Who writes, sent as `X-Ebbflow-Sender` (an ebbflow receiver shows each "
        "sender's last write); default: this host's name.",
    )
