"""Options of the alert webhook output."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from ebbflow.config import FrozenModel


class WebhookTarget(FrozenModel):
    url: str = Field(pattern=r"^https?://")
    kind: Literal["webhook", "alertmanager"] = Field(
        "webhook",
        description="webhook: Alertmanager's webhook JSON to `url`; alertmanager: the alerts "
        "to an Alertmanager's /api/v2/alerts (url is its base URL).",
    )
    name: str = Field("", description="For logs and metrics; default: the URL's host:port.")
    secret: str = Field(
        "",
        description="Signs each request: X-Ebbflow-Signature: t=<unix>,v1=<HMAC-SHA256 of t.body>.",
    )
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_name(self) -> WebhookTarget:
        if not self.name:
            object.__setattr__(self, "name", urlsplit(self.url).netloc)
        return self


class WebhookConfig(FrozenModel):
    targets: tuple[WebhookTarget, ...] = Field(min_length=1)
    receiver: str = "ebbflow"
    group_by: tuple[str, ...] = ("alertname", "service")
    group_wait: float = Field(5.0, ge=0, description="Gather a group's alerts this long.")
    repeat_interval: float = Field(
        3600.0, ge=0, description="A state alert unchanged is not sent again within this."
    )
    event_ttl: float = Field(
        300.0, gt=0, description="A one-off event (a decision) stays firing this long."
    )
    timeout: float = Field(10.0, gt=0)
    backoff_initial: float = Field(1.0, gt=0)
    backoff_max: float = Field(60.0, gt=0)
    max_queued: int = Field(10_000, ge=1, description="Notifications held per target.")
    dry_run_alerts: bool = Field(True, description="Also announce dry-run decisions.")
