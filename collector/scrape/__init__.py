"""App-scrape input: Prometheus text, Apache mod_status and nginx stub_status, by labels."""

from __future__ import annotations

from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.plugins import Plugin, PluginContext

from .collector import ScrapeInput


class ScrapeConfig(FrozenModel):
    interval: float | None = Field(None, gt=0, description="Seconds; default: the app interval.")
    timeout: float = Field(5.0, gt=0, description="Seconds for one cycle of every target.")


def create(ctx: PluginContext, config: ScrapeConfig) -> ScrapeInput:
    return ScrapeInput(
        ctx.bus,
        ctx.nodes,
        config.interval or ctx.app.interval,
        config.timeout,
        ctx.clock,
        ctx.app.container_labels,
    )


plugin: Plugin[ScrapeConfig, ScrapeInput] = Plugin("scrape", ScrapeConfig, create)

__all__ = ["ScrapeConfig", "ScrapeInput", "plugin"]
