"""Prometheus remote-write output (Prometheus, VictoriaMetrics, Mimir, Thanos...)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import RemoteWriteConfig
from .output import RemoteWriteOutput


def create(ctx: PluginContext, config: RemoteWriteConfig) -> RemoteWriteOutput:
    options = config.delivery(ctx.app.state.parent / "spool" / "remote_write")
    return RemoteWriteOutput(ctx.bus, "remote_write", config, options, ctx.clock)


plugin: Plugin[RemoteWriteConfig, RemoteWriteOutput] = Plugin(
    "remote_write", RemoteWriteConfig, create
)

__all__ = ["RemoteWriteConfig", "RemoteWriteOutput", "plugin"]
