"""Containers input: usage from cgroupfs, for the containers the core's inventory finds."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .collector import ContainerInput, HostRoots
from .config import ContainersConfig


def create(ctx: PluginContext, config: ContainersConfig) -> ContainerInput:
    return ContainerInput(
        bus=ctx.bus,
        inventory=ctx.inventory,
        interval=config.interval or ctx.app.interval,
        timeout=config.timeout,
        clock=ctx.clock,
        roots=HostRoots(config.cgroup_root, config.proc_root),
        extra_labels=ctx.app.container_labels,
    )


plugin: Plugin[ContainersConfig, ContainerInput] = Plugin("containers", ContainersConfig, create)

__all__ = ["ContainerInput", "ContainersConfig", "plugin"]
