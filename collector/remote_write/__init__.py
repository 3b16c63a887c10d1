"""Remote-write receiver input: Prometheus remote write 1.0 into the bus (and the rules)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext
from ebbflow.web.listener import web_config

from .config import RemoteWriteConfig
from .receiver import RemoteWriteInput


def create(ctx: PluginContext, config: RemoteWriteConfig) -> RemoteWriteInput:
    name = ctx.instance or "remote_write"
    web = web_config(config.web_config_file, f"inputs.{name}.web_config_file")
    return RemoteWriteInput(ctx.bus, config, ctx.clock, web)


plugin: Plugin[RemoteWriteConfig, RemoteWriteInput] = Plugin(
    "remote_write", RemoteWriteConfig, create, receives=True
)

__all__ = ["RemoteWriteConfig", "RemoteWriteInput", "plugin"]
