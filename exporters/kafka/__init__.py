"""Kafka output (kafka-python), keyed by service."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import KafkaConfig
from .output import KafkaOutput


def create(ctx: PluginContext, config: KafkaConfig) -> KafkaOutput:
    options = config.delivery(ctx.app.state.parent / "spool" / "kafka")
    return KafkaOutput(ctx.bus, "kafka", config, options, ctx.clock)


plugin: Plugin[KafkaConfig, KafkaOutput] = Plugin("kafka", KafkaConfig, create)

__all__ = ["KafkaConfig", "KafkaOutput", "plugin"]
