"""Options of the remote-write receiver."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ebbflow.config import FrozenModel


class RemoteWriteConfig(FrozenModel):
    listen: str = Field(
        "127.0.0.1:9201", pattern=r"^.*:\d+$", description="HOST:PORT of /api/v1/write."
    )
    web_config_file: Path | None = Field(
        None,
        description="TLS and basic auth for /api/v1/write, in the format of node_exporter's "
        "--web.config.file, as Prometheus's own receiver takes it; followed while serving. "
        "Without it, anyone who reaches `listen` writes samples the rules act on.",
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="A request's compressed body, at most."
    )
    max_uncompressed_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="What one body may decompress to."
    )
    max_series_per_request: int = Field(
        50_000, ge=1, description="Series one request may carry (Prometheus sends 2,000)."
    )
    max_series: int = Field(
        100_000, ge=1, description="Series held; new ones past this are dropped, counted."
    )
    expire_after: float = Field(
        300.0, gt=0, description="Seconds a series lives without a new sample."
    )
