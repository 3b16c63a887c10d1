"""Containers input: usage from cgroupfs, for the containers the core's inventory finds."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .collector import ContainerInput, HostRoots
from .config import ContainersConfig
from .housekeeping import Housekeeping


def create(ctx: PluginContext, config: ContainersConfig) -> ContainerInput:
    collector = ContainerInput(
        bus=ctx.bus,
        inventory=ctx.inventory,
        interval=config.interval or ctx.app.interval,
        timeout=config.timeout,
        clock=ctx.clock,
        roots=HostRoots(config.cgroup_root, config.proc_root),
        extra_labels=ctx.app.container_labels,
    )
    collector.housekeeping = Housekeeping(
        config.longest_interval(ctx.app.role), config.every_cycle_labels, ctx.attention.closely
    )
    return collector


plugin: Plugin[ContainersConfig, ContainerInput] = Plugin("containers", ContainersConfig, create)

__all__ = ["ContainerInput", "ContainersConfig", "plugin"]
