"""InfluxDB output (v1 and v2 APIs; VictoriaMetrics accepts both)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import InfluxConfig
from .output import InfluxOutput


def create(ctx: PluginContext, config: InfluxConfig) -> InfluxOutput:
    options = config.delivery(ctx.app.state.parent / "spool" / "influxdb")
    return InfluxOutput(ctx.bus, "influxdb", config, options, ctx.clock)


plugin: Plugin[InfluxConfig, InfluxOutput] = Plugin("influxdb", InfluxConfig, create)

__all__ = ["InfluxConfig", "InfluxOutput", "plugin"]
