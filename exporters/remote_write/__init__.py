"""Prometheus remote-write output (Prometheus, VictoriaMetrics, Mimir, Thanos...)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import RemoteWriteConfig
from .output import RemoteWriteOutput


def create(ctx: PluginContext, config: RemoteWriteConfig) -> RemoteWriteOutput:
    name = ctx.instance or "remote_write"
    options = config.delivery(ctx.app.state.parent / "spool" / name.replace("/", "-"))
    output = RemoteWriteOutput(ctx.bus, name, config, options, ctx.clock)
    output.use_tls(config.tls_config, f"outputs.{name}.tls_config")
    return output


plugin: Plugin[RemoteWriteConfig, RemoteWriteOutput] = Plugin(
    "remote_write", RemoteWriteConfig, create
)

__all__ = ["RemoteWriteConfig", "RemoteWriteOutput", "plugin"]
