"""The Kafka input: deciders consume the agents' topic as one consumer group.

Each decider gets some of the topic's partitions, and with them the services keyed there
(`ebbflow.partitions`). The group's rebalance callbacks run on this input's worker thread,
inside `consume`; each one hands the change to the event loop and waits for it there:

- on revoke (or loss), ownership drops to nothing and the actions under way finish
  before the callback returns. Kafka's eager rebalance gives a partition to its next
  owner only after every member returned from its revoke, so two deciders never act on
  one service at once;
- on assign, the new partitions (and the topic's partition count) become this
  instance's ownership, in a new epoch.

A new owner starts at the end of its partitions (no committed offsets): samples from
before it owned a service mean nothing to its windows, which fill again from fresh data,
and cooldowns come from what it sees on the engine.

confluent-kafka is blocking; every call runs on one worker thread, and every one is
bounded (`timeout`). Every message is bounded (size, samples); a bad line costs itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from ebbflow.bus import Bus
from ebbflow.metrics import Desc
from ebbflow.model import OwnershipChange, Sample, SampleBatch
from ebbflow.names import SENDER_HEADER
from ebbflow.partitions import PartitionOwnership

from ..held import HeldSeries, Senders
from .config import KafkaInputConfig
from .decode import decode

log = logging.getLogger("ebbflow.collector.kafka")

SOURCE = "kafka"
OUTCOMES = ("ok", "too_large", "undecodable")
MESSAGES = Desc(
    "ebbflow_kafka_consumer_messages_total",
    "Messages consumed, by outcome (ok, too_large: over max_message_bytes, undecodable).",
    "counter",
    ("outcome",),
)
SAMPLES = Desc("ebbflow_kafka_consumer_samples_total", "Samples consumed from Kafka.", "counter")
BAD_LINES = Desc(
    "ebbflow_kafka_consumer_bad_lines_total",
    "Lines of consumed messages that did not parse, or past max_samples_per_message.",
    "counter",
)
LAG = Desc(
    "ebbflow_kafka_consumer_lag",
    "Messages of an owned partition not yet consumed (its high watermark less the position).",
    "gauge",
    ("partition", "topic"),
)
OWNED = Desc(
    "ebbflow_kafka_consumer_partitions_owned", "Partitions the group assigns this decider."
)
GENERATION = Desc(
    "ebbflow_kafka_consumer_epoch",
    "Changes of this decider's assignment (the ownership epoch every action is checked against).",
    "counter",
)
REBALANCES = Desc(
    "ebbflow_kafka_consumer_rebalances_total",
    "Rebalance callbacks, by kind (assign, revoke, lost).",
    "counter",
    ("kind",),
)
SENDER_AGE = Desc(
    "ebbflow_kafka_consumer_sender_age_seconds",
    "Seconds since each agent's last message (its X-Ebbflow-Sender header).",
    "gauge",
    ("sender",),
)
HELD = Desc("ebbflow_kafka_consumer_series", "Series the Kafka input holds.")
DROPPED = Desc(
    "ebbflow_kafka_consumer_series_dropped_total", "New series refused past max_series.", "counter"
)


class KafkaInput:
    name = "kafka"

    def __init__(
        self,
        bus: Bus,
        config: KafkaInputConfig,
        clock: Callable[[], float] = time.time,
        ownership: PartitionOwnership | None = None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.clock = clock
        # Without `lease.backend: kafka` the assignment is kept here alone, for /metrics.
        self.ownership = ownership or PartitionOwnership(config.group_id, config.topic)
        self.ownership.group, self.ownership.topic = config.group_id, config.topic
        self.held = HeldSeries(config.max_series, config.expire_after, clock)
        self.senders = Senders()
        self.messages: Counter[str] = Counter()
        self.rebalances: Counter[str] = Counter()
        self.samples_in = 0
        self.bad_lines = 0
        self.lag: dict[int, int] = {}
        self.problem: str | None = f"joining consumer group {config.group_id}"
        self._error_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="ebbflow-kafka-in")

    # -- the worker thread ---------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The consumer's librdkafka settings: the operator's options, then ebbflow's."""
        c = self.config
        return {
            **c.consumer_options,
            "bootstrap.servers": ",".join(c.bootstrap_servers),
            "group.id": c.group_id,
            "client.id": "ebbflow-decider",
            "session.timeout.ms": int(c.session_timeout * 1000),
            "heartbeat.interval.ms": int(c.heartbeat_interval * 1000),
            # Eager rebalancing: every member gives up its partitions before any is handed on.
            "partition.assignment.strategy": "range",
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
            # A fetch returns after at most 100 ms without data (librdkafka's default, 500,
            # would be the floor of every sample's delay to the rules).
            "fetch.wait.max.ms": 100,
            "socket.timeout.ms": int(c.timeout * 1000),
            "error_cb": self._on_error,
            "logger": logging.getLogger("ebbflow.collector.kafka.librdkafka"),
        }

    def _connect(self) -> Consumer:
        c = self.config
        consumer = Consumer(self.settings())
        consumer.subscribe(
            [c.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        return consumer

    def _poll(self, consumer: Consumer) -> list[Message]:
        # The first message as soon as there is one, then what else is queued, at once:
        # `consume(n, timeout)` alone would wait for n messages or the whole timeout.
        first = consumer.poll(0.5)
        messages: list[Message] = []
        if first is not None:
            messages = [first]
            if self.config.batch > 1:
                messages += consumer.consume(self.config.batch - 1, timeout=0)
        owned = [TopicPartition(self.config.topic, p) for p in sorted(self.ownership.owned)]
        if owned:
            self.lag = self._lag(consumer, owned)
        if self.problem is not None and self.clock() - self._error_at > 2 * self.config.timeout:
            self._check_broker(consumer)
        return messages

    def _lag(self, consumer: Consumer, owned: list[TopicPartition]) -> dict[int, int]:
        lag = {}
        for position in consumer.position(owned):
            _, high = consumer.get_watermark_offsets(position, cached=True)
            lag[position.partition] = max(0, high - position.offset) if position.offset >= 0 else 0
        return lag

    def _check_broker(self, consumer: Consumer) -> None:
        """After an error, the broker answering metadata again is what clears it."""
        try:
            consumer.list_topics(self.config.topic, timeout=min(2.0, self.config.timeout))
        except Exception as err:  # KafkaException, and whatever else the call raises
            self._on_error(err)
            return
        if self.ownership.owned or self.rebalances["assign"]:
            self.problem = None

    def _on_error(self, err: object) -> None:
        code = err.code() if isinstance(err, KafkaError) else None
        why = err.str() if isinstance(err, KafkaError) else repr(err)
        if self.problem is None:
            log.warning("kafka %s: %s", ",".join(self.config.bootstrap_servers), why)
        self.problem = f"kafka {','.join(self.config.bootstrap_servers)}: {why}"
        self._error_at = self.clock()
        if code == KafkaError._ALL_BROKERS_DOWN:
            self.lag = {}

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        topic = self.config.topic
        metadata = consumer.list_topics(topic, timeout=self.config.timeout).topics.get(topic)
        count = len(metadata.partitions) if metadata is not None else 0
        owned = [p.partition for p in partitions if p.topic == topic]
        self.rebalances["assign"] += 1
        self._on_loop(self._assigned(owned, count, consumer.memberid() or ""))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances["revoke"] += 1
        self._on_loop(self._revoked("partitions revoked by a rebalance"))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalances["lost"] += 1
        self._on_loop(self._revoked("partitions lost (session timed out)"))

    def _on_loop(self, change: Coroutine[Any, Any, None]) -> None:
        """Apply an ownership change on the event loop, and wait for it: a rebalance goes
        on only once this instance stopped acting on what it gives up."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(change, self._loop)
        try:
            future.result(timeout=self.config.timeout + self.drain_timeout)
        except Exception as err:  # the change itself failed, or took too long
            log.error("ownership change not applied in time: %r", err)
            self.ownership.revoke()  # acting on nothing is always safe

    # -- the event loop ------------------------------------------------------------------
    drain_timeout = 30.0  # the longest an action under way may keep a rebalance waiting

    async def _assigned(self, owned: list[int], count: int, member: str) -> None:
        self.ownership.assign(owned, count, member)
        self.problem = None
        log.info("group %s: partitions %s of %d assigned to %s (epoch %d)",
                 self.config.group_id, owned, count, member or "this decider",
                 self.ownership.epoch())  # fmt: skip
        self.bus.publish(
            OwnershipChange(
                self.ownership.acting(), member, f"partitions {owned} assigned", self.clock()
            )
        )

    async def _revoked(self, why: str) -> None:
        self.ownership.revoke()
        self.lag = {}
        for drain in self.ownership.drains:
            try:
                async with asyncio.timeout(self.drain_timeout):
                    await drain()
            except TimeoutError:
                log.error("actions under way outlived the rebalance's wait (%gs)",
                          self.drain_timeout)  # fmt: skip
        log.info("group %s: %s (epoch %d)", self.config.group_id, why, self.ownership.epoch())
        self.bus.publish(OwnershipChange(False, "", why, self.clock()))

    def take(self, messages: Iterable[Message]) -> list[Sample]:
        now = self.clock()
        batch: list[Sample] = []
        c = self.config
        for message in messages:
            if message.error() is not None:
                self._on_error(message.error())
                continue
            value = message.value() or b""
            if len(value) > c.max_message_bytes:
                self.messages["too_large"] += 1
                continue
            decoded = decode(value, c.format, c.max_samples_per_message, now)
            self.bad_lines += decoded.bad_lines + decoded.truncated
            if decoded.bad_lines:
                log.debug("partition %s offset %s: %d bad line(s), first: %s",
                          message.partition(), message.offset(), decoded.bad_lines,
                          decoded.first_error)  # fmt: skip
            if not decoded.samples and decoded.bad_lines:
                self.messages["undecodable"] += 1
                continue
            self.messages["ok"] += 1
            self.samples_in += len(decoded.samples)
            self.senders.heard(self._sender(message), now)
            batch.extend(s for s in decoded.samples if self.held.keep(s, now))
        return batch

    @staticmethod
    def _sender(message: Message) -> str:
        headers = message.headers() or []
        pairs = headers.items() if isinstance(headers, dict) else headers
        for key, value in pairs:
            if key == SENDER_HEADER and value is not None:
                text = value if isinstance(value, str) else value.decode(errors="replace")
                return text[:128]
        return ""

    async def run(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        # A fresh worker each run: after a crash the supervisor runs this again.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="ebbflow-kafka-in")
        consumer = await loop.run_in_executor(self._worker, self._connect)
        expired_at = self.clock()
        try:
            while True:
                messages = await loop.run_in_executor(self._worker, self._poll, consumer)
                batch = self.take(messages)
                if batch:
                    self.bus.publish(SampleBatch(SOURCE, self.clock(), tuple(batch), replace=False))
                if self.clock() - expired_at > min(60.0, self.config.expire_after / 2):
                    expired_at = self.clock()
                    self._expire()
        finally:
            # Leaving the group revokes (the callback runs on the worker, inside close).
            await asyncio.shield(loop.run_in_executor(self._worker, consumer.close))
            self._worker.shutdown(wait=False)
            self.ownership.revoke()
            self.problem = f"not in consumer group {self.config.group_id}"

    def _expire(self) -> None:
        if self.held.expire():  # what is left, as a full batch: the expired series leave /metrics
            held = tuple(self.held.samples())
            self.bus.publish(SampleBatch(SOURCE, self.clock(), held, repeat=True))

    async def collect_once(self) -> list[Sample]:
        """A push input has nothing to poll: what it holds (nothing, in a fresh process)."""
        return self.held.samples()

    def dependencies(self) -> dict[str, str | None]:
        return {"kafka": self.problem}

    def telemetry(self, now: float) -> Iterable[Sample]:
        for outcome in OUTCOMES:
            yield MESSAGES.sample(self.messages[outcome], now, outcome)
        yield SAMPLES.sample(self.samples_in, now)
        yield BAD_LINES.sample(self.bad_lines, now)
        for partition, lag in sorted(self.lag.items()):
            yield LAG.sample(lag, now, str(partition), self.config.topic)
        yield OWNED.sample(len(self.ownership.owned), now)
        yield GENERATION.sample(self.ownership.epoch(), now)
        for kind in ("assign", "revoke", "lost"):
            yield REBALANCES.sample(self.rebalances[kind], now, kind)
        for sender, last in sorted(self.senders.last.items()):
            yield SENDER_AGE.sample(max(0.0, now - last), now, sender)
        yield HELD.sample(len(self.held), now)
        yield DROPPED.sample(self.held.dropped, now)
