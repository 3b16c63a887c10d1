"""Two Kafka inputs in one consumer group, against a real Kafka wire peer (librdkafka's mock
cluster): they split the partitions, each service's samples reach its owner alone, and a
member that leaves hands its partitions on only after its actions under way finished."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.kafka import KafkaInput, KafkaInputConfig
from ebbflow.exporters.kafka import KafkaConfig, KafkaOutput
from ebbflow.exporters.pipeline import DeliveryOptions
from ebbflow.model import OwnershipChange, Sample, SampleBatch, ServiceKey, labels_of
from ebbflow.partitions import PartitionOwnership
from tests.kafka_mock import MockCluster

pytestmark = pytest.mark.integration

SERVICES = [f"svc{i}" for i in range(6)]


def member(bootstrap: str, topic: str, group: str) -> tuple[KafkaInput, Bus]:
    bus = Bus()
    config = KafkaInputConfig(
        bootstrap_servers=(bootstrap,),
        topic=topic,
        group_id=group,
        session_timeout=6,
        heartbeat_interval=0.5,
        timeout=5,
    )
    return KafkaInput(bus, config, time.time, PartitionOwnership("", "")), bus


def agent_batch(round_: int) -> SampleBatch:
    return SampleBatch(
        "t",
        time.time(),
        tuple(
            Sample(
                "queue_depth", float(round_), labels_of({"service": f"shop/{name}"}), time.time()
            )
            for name in SERVICES
        ),
    )


async def until(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_two_deciders_split_the_services_and_hand_them_over_without_overlap(
    kafka_bootstrap: tuple[str, MockCluster | None],
) -> None:
    bootstrap, cluster = kafka_bootstrap
    if cluster is None:
        pytest.skip("creates its topic on the mock cluster (EBBFLOW_TEST_KAFKA is set)")
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, 6)
    (a, bus_a), (b, bus_b) = member(bootstrap, topic, group), member(bootstrap, topic, group)
    seen_a = bus_a.subscribe("test", SampleBatch, OwnershipChange, capacity=10_000)
    seen_b = bus_b.subscribe("test", SampleBatch, OwnershipChange, capacity=10_000)
    agent_bus = Bus()
    agent = KafkaOutput(
        agent_bus,
        "kafka",
        KafkaConfig(bootstrap_servers=bootstrap, topic=topic, timeout=5),  # type: ignore[arg-type]
        DeliveryOptions(batch_size=100, flush_interval=0.05),
        time.time,
    )
    overlaps, samples_taken = 0, 0
    drained_at: list[float] = []
    assigned_b_at: list[tuple[float, frozenset[int]]] = []

    async def slow_drain() -> None:  # an action under way when the rebalance comes
        await asyncio.sleep(1.0)
        drained_at.append(time.monotonic())

    async def watch() -> None:
        nonlocal overlaps
        last_b: frozenset[int] = frozenset()
        while True:
            if a.ownership.owned & b.ownership.owned:
                overlaps += 1
            if b.ownership.owned != last_b:
                last_b = b.ownership.owned
                assigned_b_at.append((time.monotonic(), last_b))
            await asyncio.sleep(0.002)

    async with asyncio.TaskGroup() as tasks:
        runs = [tasks.create_task(x.run()) for x in (a, b, agent)]
        watcher = tasks.create_task(watch())
        try:
            assert a.dependencies() == {"kafka": f"joining consumer group {group}"}
            await until(
                "both members own partitions, all six between them",
                lambda: (
                    a.ownership.owned
                    and b.ownership.owned
                    and a.ownership.owned | b.ownership.owned == set(range(6))
                ),
                30,
            )
            assert a.dependencies() == {"kafka": None} and b.dependencies() == {"kafka": None}
            assert a.ownership.partitions == b.ownership.partitions == 6
            # Every service is owned by exactly one of them.
            for name in SERVICES:
                key = ServiceKey("compose", name, "shop")
                assert a.ownership.owns(key) != b.ownership.owns(key), name

            for round_ in range(1, 4):
                agent_bus.publish(agent_batch(round_))
            await until("every sample consumed", lambda: a.samples_in + b.samples_in >= 18, 20)
            got: dict[str, set[str]] = {"a": set(), "b": set()}
            for who, queue in (("a", seen_a), ("b", seen_b)):
                while (event := queue.get_nowait()) is not None:
                    if isinstance(event, SampleBatch):
                        got[who] |= {s.label("service").split("/")[1] for s in event.samples}
            owned_by_a = {n for n in SERVICES if a.ownership.owns(ServiceKey("compose", n, "s"))}
            assert got["a"] == owned_by_a and got["b"] == set(SERVICES) - owned_by_a
            samples_taken = a.samples_in + b.samples_in
            rows = {s.name: s for s in a.telemetry(time.time()) if not s.labels}
            assert rows["ebbflow_kafka_consumer_partitions_owned"].value == len(a.ownership.owned)
            senders = [s for s in b.telemetry(time.time())
                       if s.name == "ebbflow_kafka_consumer_sender_age_seconds"]  # fmt: skip
            assert [s.labels for s in senders] == [(("sender", agent.host[:64]),)]
            lags = [s for s in a.telemetry(time.time()) if s.name == "ebbflow_kafka_consumer_lag"]
            assert sorted(int(s.label("partition")) for s in lags) == sorted(a.ownership.owned)

            # a leaves with an action under way: b gets a's partitions only once it finished.
            a.ownership.drains.append(slow_drain)
            epoch_b = b.ownership.epoch()
            runs[0].cancel()
            await until("b owns all six", lambda: b.ownership.owned == set(range(6)), 30)
            assert a.ownership.owned == frozenset() and drained_at
            # `until` can see the hand-over before the watcher's next turn records it
            await until(
                "the watcher saw it", lambda: any(o == set(range(6)) for _, o in assigned_b_at), 5
            )
            took_over_at = next(t for t, owned in assigned_b_at if owned == set(range(6)))
            assert took_over_at > drained_at[0]
            assert b.ownership.epoch() >= epoch_b + 2  # revoked, then assigned again
        finally:
            for task in [*runs, watcher]:
                task.cancel()
    assert overlaps == 0 and samples_taken == 18
