"""The Kafka path, measured: what one decider consumes, beside what the client alone does.

    .venv/bin/python benchmarks/kafka.py [--messages 200] [--per-message 500] [--rounds 5]

A topic on librdkafka's mock cluster (tests/kafka_mock.py; no broker can be installed
here) is filled once by ebbflow's Kafka output: `--messages` messages of `--per-message`
container samples each, line protocol, keyed by service. Then, per round and interleaved:

1. the client alone: a confluent-kafka consumer in a fresh group reads every message
   (no decoding), the ceiling any consumer in Python reaches here;
2. the decider's input: `KafkaInput` in a fresh group, joining, decoding every line,
   keeping the series and publishing a batch on the bus per poll;
3. the same with a subscriber routing every sample by name, as the rule engine does first.

Rates are samples per second, from the first message to the last (the group join is
timed separately), medians of `--rounds`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # tests.kafka_mock; ebbflow itself as installed

from confluent_kafka import Consumer  # noqa: E402

from ebbflow.bus import Bus  # noqa: E402
from ebbflow.collector.kafka import KafkaInput, KafkaInputConfig  # noqa: E402
from ebbflow.exporters.kafka import KafkaConfig, KafkaOutput  # noqa: E402
from ebbflow.exporters.pipeline import DeliveryOptions  # noqa: E402
from ebbflow.model import Sample, SampleBatch  # noqa: E402
from ebbflow.partitions import PartitionOwnership  # noqa: E402
from tests.kafka_mock import MockCluster  # noqa: E402


def samples(messages: int, per_message: int) -> list[Sample]:
    out = []
    for m in range(messages):
        labels = (
            ("container_label_com_docker_compose_project", "shop"),
            ("container_label_com_docker_compose_service", f"svc{m % 12}"),
            ("id", f"/docker/{m:064x}"),
            ("image", "busybox"),
            ("name", f"shop-svc{m % 12}-{m}"),
        )
        out += [
            Sample(f"container_metric_{i % 50}", float(i), labels, 1_800_000_000.0 + m)
            for i in range(per_message)
        ]
    return out


async def fill(bootstrap: str, topic: str, batch: list[Sample], per_message: int) -> None:
    bus = Bus()
    options = DeliveryOptions(batch_size=per_message, flush_interval=0.05, max_buffered=len(batch))
    config = KafkaConfig(bootstrap_servers=(bootstrap,), topic=topic, compression="none")
    out = KafkaOutput(bus, "kafka", config, options, time.time)
    task = asyncio.create_task(out.run())
    for start in range(0, len(batch), per_message):
        bus.publish(SampleBatch("bench", 0.0, tuple(batch[start : start + per_message])))
    while out.sent < len(batch):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


POLL = 50  # messages per poll, for both: the first poll's are left out of the rate


def client_alone(bootstrap: str, topic: str, total: int) -> tuple[float, float]:
    """(seconds to the first poll with messages, samples per second after it: the lines
    of the messages, counted, not parsed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"b-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    began = time.perf_counter()
    first, at_first, got = 0.0, 0, 0
    while got < total:
        batch = consumer.consume(POLL, timeout=1.0)
        got += sum((m.value() or b"").count(b"\n") + 1 for m in batch if m.error() is None)
        if batch and not first:
            first, at_first = time.perf_counter(), got
    done = time.perf_counter()
    consumer.close()
    return first - began, (got - at_first) / (done - first)


class FromTheStart(KafkaInput):
    """A decider starts at the end of its partitions; here, at the start of the topic
    filled before the group joined."""

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"auto.offset.reset": "earliest"}


async def decider(bootstrap: str, topic: str, total: int, route: bool) -> tuple[float, float]:
    """(seconds to the first samples, samples per second after them)."""
    bus = Bus(1_000_000)
    config = KafkaInputConfig(bootstrap_servers=(bootstrap,), topic=topic,
                              group_id=f"b-{uuid.uuid4().hex}", max_series=1_000_000,
                              batch=POLL)  # fmt: skip
    source = FromTheStart(bus, config, time.time, PartitionOwnership("", ""))
    routed = 0
    subscription = bus.subscribe("rules", SampleBatch, capacity=100_000)

    async def rules() -> None:
        nonlocal routed
        async for event in subscription:
            assert isinstance(event, SampleBatch)
            names: dict[int, str] = {}
            for s in event.samples:
                key = names.get(id(s.labels))
                if key is None:
                    key = names[id(s.labels)] = s.label("name")
                routed += 1

    began = time.perf_counter()
    first, at_first = 0.0, 0
    async with asyncio.TaskGroup() as tasks:
        run = tasks.create_task(source.run())
        router = tasks.create_task(rules()) if route else None
        while source.samples_in < total:
            if source.samples_in and not first:
                first, at_first = time.perf_counter(), source.samples_in
            await asyncio.sleep(0.002)
        while route and routed < total:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        done = time.perf_counter()
        run.cancel()
        if router is not None:
            router.cancel()
    return first - began, (total - at_first) / (done - first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The mock cluster keeps a bounded log: 400 messages of 500 samples lost the oldest.
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--per-message", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    total = args.messages * args.per_message
    with MockCluster() as cluster:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        cluster.create_topic(topic, 6)
        asyncio.run(fill(cluster.bootstrap, topic, samples(args.messages, args.per_message),
                         args.per_message))  # fmt: skip
        rates: dict[str, list[float]] = {"client": [], "input": [], "routed": []}
        joins: dict[str, list[float]] = {"client": [], "input": [], "routed": []}
        for _ in range(args.rounds):
            join, per_second = client_alone(cluster.bootstrap, topic, total)
            rates["client"].append(per_second)
            joins["client"].append(join)
            for name, route in (("input", False), ("routed", True)):
                join, per_second = asyncio.run(decider(cluster.bootstrap, topic, total, route))
                rates[name].append(per_second)
                joins[name].append(join)
    base = statistics.median(rates["client"])
    print(f"{total:,} samples in {args.messages} messages, median of {args.rounds} rounds")
    print("| path | samples/s | of the client alone | join, s |")
    print("|---|---|---|---|")
    titles = {
        "client": "confluent-kafka consumer alone (no decoding)",
        "input": "the decider's Kafka input (decode, series kept, a batch on the bus)",
        "routed": "the input with a subscriber routing every sample by name",
    }
    for name, title in titles.items():
        rate = statistics.median(rates[name])
        join = statistics.median(joins[name])
        print(f"| {title} | {rate:,.0f} | ×{rate / base:.2f} | {join:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
