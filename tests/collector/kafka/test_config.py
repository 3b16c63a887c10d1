"""Bad Kafka input settings fail at start and name what was wrong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ebbflow.collector.kafka import KafkaInputConfig


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(
        ValidationError, match='No such configuration property: "session_timeout_ms"'
    ):
        KafkaInputConfig(consumer_options={"session_timeout_ms": 100})
    with pytest.raises(ValidationError, match="heartbeat_interval") as err:
        KafkaInputConfig(session_timeout=3, heartbeat_interval=2)
    assert "at most a third of session_timeout (3s)" in str(err.value)
    with pytest.raises(ValidationError, match="group_id"):
        KafkaInputConfig(group_id="two words")
    config = KafkaInputConfig(
        bootstrap_servers="a:1, b:2", consumer_options={"fetch.wait.max.ms": 50}
    )  # type: ignore[arg-type]
    assert config.bootstrap_servers == ("a:1", "b:2")
