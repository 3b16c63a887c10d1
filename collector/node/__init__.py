"""Node input: the host's CPU, memory, load, filesystems, disks, network (node_exporter names)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .collector import NodeInput
from .config import NodeConfig


def create(ctx: PluginContext, config: NodeConfig) -> NodeInput:
    return NodeInput(ctx.bus, config, config.interval or ctx.app.interval, ctx.clock)


plugin: Plugin[NodeConfig, NodeInput] = Plugin("node", NodeConfig, create)

__all__ = ["NodeConfig", "NodeInput", "plugin"]
