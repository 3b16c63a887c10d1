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
    max_label_value_length: int = Field(
        1024, ge=16, description="Longer tag values are cut to this many characters, counted."
    )
    max_name_length: int = Field(
        256, ge=16, description="A measurement, field, metric or tag name longer is malformed."
    )
    max_tags: int = Field(32, ge=1, description="A line with more tags is malformed.")
    precision: Literal["ns", "us", "ms", "s"] = Field(
        "ns", description="What a line-protocol timestamp counts (InfluxDB's `precision`)."
    )
    read_buffer: int = Field(
        8 << 20,
        ge=4096,
        description="Socket receive buffer, bytes: what absorbs a burst while a datagram is "
        "parsed (forced past net.core.rmem_max when run as root).",
    )
    set_interval: float = Field(
        10.0, gt=0, description="Seconds a StatsD set counts unique members over (statsd's flush)."
    )
