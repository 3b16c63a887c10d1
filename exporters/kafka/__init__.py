"""Kafka output (kafka-python), keyed by service."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import KafkaConfig
from .output import KafkaOutput


def create(ctx: PluginContext, config: KafkaConfig) -> KafkaOutput:
    name = ctx.instance or "kafka"
    options = config.delivery(ctx.app.state.parent / "spool" / name.replace("/", "-"))
    return KafkaOutput(ctx.bus, name, config, options, ctx.clock)


plugin: Plugin[KafkaConfig, KafkaOutput] = Plugin("kafka", KafkaConfig, create)

__all__ = ["KafkaConfig", "KafkaOutput", "plugin"]
