"""InfluxDB output (v1 and v2 APIs; VictoriaMetrics accepts both)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from ..buffered import DeliveryOptions
from .config import InfluxConfig
from .output import InfluxOutput


def create(ctx: PluginContext, config: InfluxConfig) -> InfluxOutput:
    spool = config.spool_dir or ctx.app.state.parent / "spool" / "influxdb"
    options = DeliveryOptions(
        batch_size=config.batch_size,
        flush_interval=config.flush_interval,
        max_buffered=config.max_buffered,
        spool_dir=spool,
        spool_max_bytes=config.spool_max_bytes,
        timeout=config.timeout,
    )
    return InfluxOutput(ctx.bus, "influxdb", config, options, ctx.clock)


plugin: Plugin[InfluxConfig, InfluxOutput] = Plugin("influxdb", InfluxConfig, create)

__all__ = ["InfluxConfig", "InfluxOutput", "plugin"]
