"""Node input: the host's CPU, memory, load, filesystems, disks, network (node_exporter names)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .collector import NodeInput
from .config import NodeConfig


def create(ctx: PluginContext, config: NodeConfig) -> NodeInput:
    # An agent's series are re-exported by its decider beside other nodes': they say whose.
    labelled = config.name is not None or ctx.app.role == "agent"
    return NodeInput(ctx.bus, config, config.interval or ctx.app.interval, ctx.clock, labelled)


plugin: Plugin[NodeConfig, NodeInput] = Plugin("node", NodeConfig, create)

__all__ = ["NodeConfig", "NodeInput", "plugin"]
