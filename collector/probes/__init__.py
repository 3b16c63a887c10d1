"""Probes input: HTTP, TCP and exec probes declared by labels (blackbox_exporter names)."""

from __future__ import annotations

from ebbflow.config import FrozenModel
from ebbflow.plugins import Plugin, PluginContext

from .collector import ProbeInput
from .spec import ProbeSpec, parse_probe


class ProbesConfig(FrozenModel):
    """Probes are declared per container by labels; the input itself has no options yet."""


def create(ctx: PluginContext, config: ProbesConfig) -> ProbeInput:
    return ProbeInput(ctx.bus, ctx.nodes, ctx.clock)


plugin: Plugin[ProbesConfig, ProbeInput] = Plugin("probes", ProbesConfig, create)

__all__ = ["ProbeInput", "ProbeSpec", "ProbesConfig", "parse_probe", "plugin"]
