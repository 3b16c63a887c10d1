"""Options of the Kafka input: the deciders' consumer group over the agents' topic."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ebbflow.config import CommaList, FrozenModel


class KafkaInputConfig(FrozenModel):
    bootstrap_servers: CommaList = Field(("127.0.0.1:9092",), min_length=1)
    topic: str = Field("ebbflow", pattern=r"^[A-Za-z0-9._-]{1,249}$")
    group_id: str = Field(
        "ebbflow-deciders",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="The deciders' consumer group: each partition, and so each service, has "
        "one owner in it.",
    )
    session_timeout: float = Field(
        10.0,
        ge=1,
        le=300,
        description="Seconds the group waits for a silent member (a killed decider) before "
        "handing its partitions to the others (Kafka's default is 45; a decider is cheap to "
        "replace and slow to miss).",
    )
    heartbeat_interval: float = Field(
        1.0, gt=0, description="Seconds between heartbeats (at most a third of the timeout)."
    )
    format: Literal["auto", "influx", "json"] = Field(
        "auto",
        description="What the agents' Kafka output writes; auto: JSON lines when a message "
        "starts with `{`, else line protocol.",
    )
    max_message_bytes: int = Field(
        2_000_000, ge=1024, description="A larger message is skipped and counted."
    )
    max_samples_per_message: int = Field(
        100_000, ge=1, description="Samples one message may carry; the rest are dropped, counted."
    )
    max_series: int = Field(
        100_000, ge=1, description="Series held; new ones past this are dropped, counted."
    )
    expire_after: float = Field(
        300.0, gt=0, description="Seconds a series lives without a new sample."
    )
    batch: int = Field(500, ge=1, le=100_000, description="Messages taken per poll.")
    timeout: float = Field(
        10.0, gt=0, description="Seconds any single broker request (metadata, a poll) may take."
    )
    consumer_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="librdkafka settings passed as is (security.protocol, sasl.*...); the "
        "group, offsets and rebalance settings above are ebbflow's.",
    )

    @field_validator("heartbeat_interval")
    @classmethod
    def _within_timeout(cls, value: float, info: object) -> float:
        timeout = getattr(info, "data", {}).get("session_timeout", 10.0)
        if value * 3 > timeout:
            raise ValueError(f"must be at most a third of session_timeout ({timeout:g}s)")
        return value

    @field_validator("consumer_options")
    @classmethod
    def _known_options(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        """librdkafka itself judges the names and values, at start, naming the bad one."""
        from confluent_kafka import Consumer, KafkaException

        try:
            Consumer({"group.id": "ebbflow-check", **value, "log_level": 0}).close()
        except KafkaException as err:
            raise ValueError(err.args[0].str()) from None
        except (ValueError, TypeError) as err:
            raise ValueError(str(err)) from None
        return value
