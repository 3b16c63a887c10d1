"""The Kafka output against a real Kafka wire peer (librdkafka's mock cluster, or the broker
EBBFLOW_TEST_KAFKA names): messages consumed back with confluent-kafka."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import ValidationError

from ebbflow.bus import Bus
from ebbflow.exporters.kafka import KafkaConfig, KafkaOutput
from ebbflow.exporters.pipeline import DeliveryOptions
from ebbflow.model import Sample, SampleBatch, labels_of
from tests.kafka_mock import MockCluster

WEB = {
    "name": "shop-web-1",
    "container_label_com_docker_compose_project": "shop",
    "container_label_com_docker_compose_service": "web",
}
DB = {"name": "db1", "container_label_ebbflow_service": "db"}


def batch(first: int, count: int) -> SampleBatch:
    """`count` samples alternating web, db and node series, valued first..first+count-1."""
    owners = [WEB, DB, {}]
    return SampleBatch(
        "t",
        0.0,
        tuple(
            Sample("ebbflow_test_value", float(i), labels_of(owners[i % 3]), 1700000000.0 + i)
            for i in range(first, first + count)
        ),
    )


def output(bus: Bus, bootstrap: str, topic: str, **config: object) -> KafkaOutput:
    return KafkaOutput(
        bus,
        "kafka",
        KafkaConfig(bootstrap_servers=bootstrap, topic=topic, timeout=5, **config),  # type: ignore[arg-type]
        DeliveryOptions(batch_size=40, flush_interval=0.05, backoff_initial=0.1, backoff_max=0.5),
        time.time,
    )


def create_topic(bootstrap: str, cluster: MockCluster | None, partitions: int) -> str:
    topic = f"ebbflow-{uuid.uuid4().hex[:8]}"
    if cluster is not None:
        cluster.create_topic(topic, partitions)
    else:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
            future.result(10)
    return topic


def read(
    bootstrap: str, topic: str, enough: Callable[[list[Message]], bool], idle: float
) -> list[Message]:
    """Messages from the start of the topic until `enough` says so or none came for `idle`
    seconds (then a test's counts show what is missing)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[Message] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle and not enough(got):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                got.append(message)
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return got


def lines(messages: list[Message]) -> int:
    return sum((m.value() or b"").count(b"\n") + 1 for m in messages)


def consume(bootstrap: str, topic: str, samples: int) -> list[tuple[int, str, bytes]]:
    """(partition, key, value) of every message, stopping once they hold `samples` lines."""
    got = read(bootstrap, topic, lambda got: lines(got) >= samples, idle=10.0)
    return [(m.partition() or 0, (m.key() or b"").decode(), m.value() or b"") for m in got]


def consume_more(bootstrap: str, topic: str, skip: int) -> list[tuple[int, str, bytes]]:
    """Messages beyond the first `skip` (a single-partition topic), waiting 1 s for any."""
    got = read(bootstrap, topic, lambda got: False, idle=3.0)
    return [
        (m.partition() or 0, (m.key() or b"").decode(), m.value() or b"")
        for m in got
        if (m.offset() or 0) >= skip
    ]


async def run_until_sent(out: KafkaOutput, samples: int) -> None:
    task = asyncio.create_task(out.run())
    try:
        async with asyncio.timeout(30):
            while out.sent < samples:  # noqa: ASYNC110  (polling a counter is the point)
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_messages_are_keyed_by_service_and_split_by_size() -> None:
    out = output(Bus(), "127.0.0.1:1", "t", max_message_bytes=1024)
    messages = out.messages(list(batch(0, 90).samples))
    keys = [key.decode() for key, _ in messages]
    assert set(keys) == {"web", "db", f"node:{out.host}"}
    assert all(len(value) <= 1024 for _, value in messages)
    assert keys.count("web") > 1  # 30 lines of ~150 bytes do not fit in one
    web = b"\n".join(value for key, value in messages if key == b"web")
    assert [float(line.split(b" ")[1][6:]) for line in web.split(b"\n")] == [
        float(i) for i in range(0, 90, 3)
    ]  # in order across the split


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValidationError) as err:
        KafkaConfig(producer_options={"linger.ms": "soon"})  # type: ignore[dict-item]
    assert "producer_options" in str(err.value) and "Invalid value" in str(err.value)
    with pytest.raises(ValidationError, match='No such configuration property: "sasl_username"'):
        KafkaConfig(producer_options={"sasl_username": "u"})  # kafka-python's spelling
    with pytest.raises(ValidationError, match="compression"):
        KafkaConfig(compression="brotli")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="idempotent: true needs acks: all"):
        KafkaConfig(acks=1)
    with pytest.raises(ValidationError, match="topic"):
        KafkaConfig(topic="bad topic")
    assert KafkaConfig(bootstrap_servers="a:1, b:2").bootstrap_servers == ("a:1", "b:2")  # type: ignore[arg-type]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fmt", "compression", "acks"), [("influx", "gzip", "all"), ("json", "none", 1)]
)
async def test_consumed_back_with_key_and_payload(
    kafka_bootstrap: tuple[str, MockCluster | None], fmt: str, compression: str, acks: object
) -> None:
    bootstrap, cluster = kafka_bootstrap
    topic = create_topic(bootstrap, cluster, partitions=4)
    bus = Bus()
    out = output(
        bus,
        bootstrap,
        topic,
        format=fmt,
        compression=compression,
        acks=acks,
        idempotent=acks == "all",
    )
    for first in range(0, 300, 30):
        bus.publish(batch(first, 30))
    await run_until_sent(out, 300)
    messages = await asyncio.to_thread(consume, bootstrap, topic, 300)

    values_by_key: dict[str, list[float]] = {}
    partitions_by_key: dict[str, set[int]] = {}
    for partition, key, value in messages:
        partitions_by_key.setdefault(key, set()).add(partition)
        for line in value.decode().split("\n"):
            if fmt == "json":
                row = json.loads(line)
                assert row["name"] == "ebbflow_test_value" and row["type"] == "gauge"
                number = row["fields"]["value"]
                assert row["timestamp"] == 1700000000.0 + number
            else:
                number = float(line.split(" ")[1].removeprefix("value="))
                assert line.startswith("ebbflow_test_value")
            values_by_key.setdefault(key, []).append(number)
    web, db = "web", "db"
    assert values_by_key[web] == [float(i) for i in range(0, 300, 3)]  # all, once, in order
    assert values_by_key[db] == [float(i) for i in range(1, 300, 3)]
    assert values_by_key[f"node:{out.host}"] == [float(i) for i in range(2, 300, 3)]
    assert all(len(parts) == 1 for parts in partitions_by_key.values())  # one partition each


@pytest.mark.integration
async def test_a_broker_down_then_back_loses_nothing(
    kafka_bootstrap: tuple[str, MockCluster | None],
) -> None:
    bootstrap, cluster = kafka_bootstrap
    if cluster is None:
        pytest.skip("needs the mock cluster to take its broker down (EBBFLOW_TEST_KAFKA is set)")
    topic = create_topic(bootstrap, cluster, partitions=1)
    bus = Bus()
    out = output(bus, bootstrap, topic)
    task = asyncio.create_task(out.run())
    try:
        bus.publish(batch(0, 30))
        async with asyncio.timeout(20):
            while out.sent < 30:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        cluster.broker_down()
        for first in range(30, 300, 30):
            bus.publish(batch(first, 30))
            await asyncio.sleep(0.3)
        async with asyncio.timeout(30):
            while out.retries == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert not out.last_send_ok
        cluster.broker_up()
        async with asyncio.timeout(60):
            while out.sent < 300:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    messages = await asyncio.to_thread(consume, bootstrap, topic, 300)
    await asyncio.sleep(1)  # a duplicate would be on the topic by now
    messages += await asyncio.to_thread(consume_more, bootstrap, topic, len(messages))
    values = sorted(
        float(line.split(" ")[1].removeprefix("value="))
        for _, _, value in messages
        for line in value.decode().split("\n")
    )
    assert values == [float(i) for i in range(300)]  # every sample, none twice
    assert out.last_send_ok and sum(out.dropped.values()) == 0
