"""UDP input: InfluxDB line protocol and StatsD pushed by applications."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .collector import UdpInput
from .config import UdpConfig


def create(ctx: PluginContext, config: UdpConfig) -> UdpInput:
    return UdpInput(ctx.bus, config, ctx.clock)


plugin: Plugin[UdpConfig, UdpInput] = Plugin("udp", UdpConfig, create)

__all__ = ["UdpConfig", "UdpInput", "plugin"]
