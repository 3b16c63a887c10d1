"""App-scrape input: Prometheus text, Apache mod_status and nginx stub_status, by labels."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .collector import ScrapeInput
from .config import ScrapeConfig, ScrapeLimits


def create(ctx: PluginContext, config: ScrapeConfig) -> ScrapeInput:
    return ScrapeInput(
        ctx.bus,
        ctx.nodes,
        config.interval or ctx.app.interval,
        config.timeout,
        ctx.clock,
        ctx.app.container_labels,
        config.limits,
    )


plugin: Plugin[ScrapeConfig, ScrapeInput] = Plugin("scrape", ScrapeConfig, create)

__all__ = ["ScrapeConfig", "ScrapeInput", "ScrapeLimits", "plugin"]
