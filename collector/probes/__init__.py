"""Probes input: HTTP, TCP and exec probes declared by labels (blackbox_exporter names)."""

from __future__ import annotations

from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.plugins import Plugin, PluginContext

from .collector import ProbeInput
from .report import describe
from .spec import MIN_INTERVAL, ProbeSpec, parse_probe


class ProbesConfig(FrozenModel):
    """Probes are declared per container by labels; the input only bounds them."""

    min_interval: float = Field(
        MIN_INTERVAL, gt=0, description="Shortest probe interval a label may ask for, seconds."
    )
    allowed_targets: tuple[str, ...] = Field(
        (),
        description="Hosts, addresses or networks (CIDR) a probe label may name beside the "
        "container's own addresses: the operator's trust, never a label's.",
    )


def create(ctx: PluginContext, config: ProbesConfig) -> ProbeInput:
    return ProbeInput(
        ctx.bus,
        ctx.nodes,
        ctx.clock,
        config.min_interval,
        ctx.app.container_labels,
        config.allowed_targets,
    )


plugin: Plugin[ProbesConfig, ProbeInput] = Plugin("probes", ProbesConfig, create, describe)

__all__ = ["ProbeInput", "ProbeSpec", "ProbesConfig", "parse_probe", "plugin"]
