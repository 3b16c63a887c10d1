"""InfluxDB output (v1 and v2 APIs; VictoriaMetrics accepts both)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import InfluxConfig
from .output import InfluxOutput


def create(ctx: PluginContext, config: InfluxConfig) -> InfluxOutput:
    name = ctx.instance or "influxdb"
    options = config.delivery(ctx.app.state.parent / "spool" / name.replace("/", "-"))
    output = InfluxOutput(ctx.bus, name, config, options, ctx.clock)
    output.use_tls(config.tls_config, f"outputs.{name}.tls_config")
    return output


plugin: Plugin[InfluxConfig, InfluxOutput] = Plugin("influxdb", InfluxConfig, create)

__all__ = ["InfluxConfig", "InfluxOutput", "plugin"]
