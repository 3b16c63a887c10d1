"""Nagios input: plugin commands' states and perfdata."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .collector import NagiosCheck, NagiosInput
from .config import NagiosCheckConfig, NagiosConfig


def create(ctx: PluginContext, config: NagiosConfig) -> NagiosInput:
    return NagiosInput(
        [NagiosCheck(ctx.bus, c, ctx.app.interval, ctx.clock) for c in config.checks]
    )


plugin: Plugin[NagiosConfig, NagiosInput] = Plugin("nagios", NagiosConfig, create)

__all__ = ["NagiosCheckConfig", "NagiosConfig", "NagiosInput", "plugin"]
