"""Options of the UDP input."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ebbflow.config import FrozenModel


class UdpConfig(FrozenModel):
    listen: str = Field("127.0.0.1:8125", pattern=r"^.*:\d+$", description="HOST:PORT (0: any).")
    format: Literal["auto", "influx", "statsd"] = Field(
        "auto", description="auto tells each line apart: StatsD has `name:value|type`."
    )
    expire_after: float = Field(300.0, gt=0, description="Seconds a series lives unrefreshed.")
    max_series: int = Field(10_000, ge=1, description="New series past this are dropped.")
