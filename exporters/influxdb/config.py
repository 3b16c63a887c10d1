"""Options of an InfluxDB output."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ebbflow.config import FrozenModel


class InfluxConfig(FrozenModel):
    url: str = Field("http://127.0.0.1:8086", pattern=r"^https?://")
    api: Literal["v1", "v2"] = "v2"
    org: str = ""
    bucket: str = "ebbflow"
    token: str = ""
    database: str = "ebbflow"
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    batch_size: int = Field(5000, ge=1)
    flush_interval: float = Field(1.0, gt=0)
    max_buffered: int = Field(100_000, ge=1, description="Samples in memory before spooling.")
    spool_dir: Path | None = Field(None, description="Default: spool/<output> beside the state.")
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    timeout: float = Field(10.0, gt=0)
