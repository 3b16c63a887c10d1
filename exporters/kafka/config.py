"""Options of a Kafka output."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ebbflow.config import CommaList

from ..pipeline import DeliveryConfig

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]  # all built into librdkafka


class KafkaConfig(DeliveryConfig):
    bootstrap_servers: CommaList = Field(("127.0.0.1:9092",), min_length=1)
    topic: str = Field("ebbflow", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    format: Literal["influx", "json"] = Field(
        "influx", description="influx: line protocol; json: Telegraf-style JSON lines."
    )
    compression: Compression = "gzip"
    acks: Literal[0, 1, "all"] = "all"
    idempotent: bool = Field(
        True, description="No duplicates from the client's own retries (needs acks: all)."
    )
    client_id: str = "ebbflow"
    max_message_bytes: int = Field(
        900_000, ge=1024, description="A service's samples are split into messages this big."
    )
    producer_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="librdkafka settings passed as is (security.protocol, sasl.*...).",
    )

    @field_validator("producer_options")
    @classmethod
    def _known_options(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        """librdkafka itself judges the names and values, at start, naming the bad one (a
        producer with no bootstrap servers connects nowhere)."""
        from confluent_kafka import KafkaException, Producer

        try:
            Producer({**value, "log_level": 0}).flush(0)
        except KafkaException as err:
            raise ValueError(err.args[0].str()) from None
        except (ValueError, TypeError) as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _idempotence_needs_all(self) -> KafkaConfig:
        if self.idempotent and self.acks != "all":
            raise ValueError("idempotent: true needs acks: all (or set idempotent: false)")
        return self
