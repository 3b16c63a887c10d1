"""Prometheus output: a `/metrics` endpoint with cAdvisor-compatible names."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.plugins import Plugin, PluginContext
from ebbflow.web.listener import web_config

from .server import PrometheusOutput


class PrometheusConfig(FrozenModel):
    listen: str = Field(
        "127.0.0.1:9781",
        pattern=r"^.*:\d+$",
        description="HOST:PORT to serve /metrics, /healthz, /readyz and the status page on "
        "(0: any free port).",
    )
    web_config_file: Path | None = Field(
        None,
        description="TLS and basic auth for everything served here, in the format of "
        "node_exporter's --web.config.file (exporter-toolkit's web-config.yml); read again "
        "within a second of a change to it or to a file it names.",
    )
    max_label_value_length: int = Field(
        1024, ge=16, description="Longer label values are cut to this many characters."
    )


def create(ctx: PluginContext, config: PrometheusConfig) -> PrometheusOutput:
    name = ctx.instance or "prometheus"
    web = web_config(config.web_config_file, f"outputs.{name}.web_config_file")
    return PrometheusOutput(
        ctx.bus,
        config.listen,
        ctx.health,
        config.max_label_value_length,
        pages=ctx.web,
        web=web,
        server=name,
    )


plugin: Plugin[PrometheusConfig, PrometheusOutput] = Plugin("prometheus", PrometheusConfig, create)

__all__ = ["PrometheusConfig", "PrometheusOutput", "plugin"]
