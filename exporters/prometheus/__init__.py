"""Prometheus output: a `/metrics` endpoint with cAdvisor-compatible names."""

from __future__ import annotations

from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.plugins import Plugin, PluginContext

from .server import PrometheusOutput


class PrometheusConfig(FrozenModel):
    listen: str = Field(
        "127.0.0.1:9781",
        pattern=r"^.*:\d+$",
        description="HOST:PORT to serve /metrics, /healthz and /readyz on (0: any free port).",
    )
    max_label_value_length: int = Field(
        1024, ge=16, description="Longer label values are cut to this many characters."
    )


def create(ctx: PluginContext, config: PrometheusConfig) -> PrometheusOutput:
    return PrometheusOutput(ctx.bus, config.listen, ctx.health, config.max_label_value_length)


plugin: Plugin[PrometheusConfig, PrometheusOutput] = Plugin("prometheus", PrometheusConfig, create)

__all__ = ["PrometheusConfig", "PrometheusOutput", "plugin"]
