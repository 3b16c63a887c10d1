"""Remote-write receiver input: Prometheus remote write 1.0 into the bus (and the rules)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import RemoteWriteConfig
from .receiver import RemoteWriteInput


def create(ctx: PluginContext, config: RemoteWriteConfig) -> RemoteWriteInput:
    return RemoteWriteInput(ctx.bus, config, ctx.clock)


plugin: Plugin[RemoteWriteConfig, RemoteWriteInput] = Plugin(
    "remote_write", RemoteWriteConfig, create, receives=True
)

__all__ = ["RemoteWriteConfig", "RemoteWriteInput", "plugin"]
