"""Options of the app-scrape input."""

from __future__ import annotations

from pydantic import Field

from ebbflow.config import FrozenModel


class ScrapeLimits(FrozenModel):
    """Prometheus' scrape limits, on by default: a container's endpoint is anyone's to
    write, and every instance on the engine reads it. A scrape past any of them fails, as
    Prometheus fails it, and is counted by limit."""

    body_size_limit: int = Field(
        10 * 1024 * 1024, ge=1024, description="Bytes of one answer read at most."
    )
    sample_limit: int = Field(20_000, ge=1, description="Samples of one page at most.")
    label_limit: int = Field(64, ge=1, description="Labels of one sample at most.")
    label_name_length_limit: int = Field(256, ge=1, description="Characters of a label name.")
    label_value_length_limit: int = Field(2048, ge=1, description="Characters of a label value.")


class ScrapeConfig(FrozenModel):
    interval: float | None = Field(None, gt=0, description="Seconds; default: the app interval.")
    timeout: float = Field(
        5.0, gt=0, description="Seconds for one scrape of one target (each on its own loop)."
    )
    limits: ScrapeLimits = ScrapeLimits()
