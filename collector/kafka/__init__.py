"""Kafka input: deciders consume the agents' topic as one consumer group, each owning the
services of its partitions (with `lease.backend: kafka`)."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import KafkaInputConfig
from .consumer import KafkaInput


def create(ctx: PluginContext, config: KafkaInputConfig) -> KafkaInput:
    return KafkaInput(ctx.bus, config, ctx.clock, ctx.partitions)


plugin: Plugin[KafkaInputConfig, KafkaInput] = Plugin(
    "kafka", KafkaInputConfig, create, receives=True
)

__all__ = ["KafkaInput", "KafkaInputConfig", "plugin"]
