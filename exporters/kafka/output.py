"""The Kafka output: one topic, messages keyed by service name.

Keying by service puts one service's samples in one partition, in order, which is what a
rule engine consuming the topic (one consumer group, one owner per service) needs. The key
is the service's name (`ebbflow.services.routing_name`): from a container's labels, or an
app metric's `service` label, so both reach the decider that owns the service. A batch
becomes one message per key (split at `max_message_bytes`), each holding its samples as
line protocol or JSON lines; series of no service (node, ebbflow's own) are keyed
`node:<host>`.

The producer is confluent-kafka's (librdkafka), the same client the deciders' consumer
group uses. It places keys with Kafka's own murmur2 partitioner (the Java client's), which
`ebbflow.partitions` computes again to know which decider owns a service. Every message
carries `X-Ebbflow-Sender` (the agent's host) so deciders show each agent's last message.

Calls run on one worker thread of this output's own; the event loop never waits on a
broker. A batch that timed out keeps its messages in the producer's queue (librdkafka
retries them, idempotently): the retry waits for those and produces again only the ones
that failed, so a slow broker does not get the same samples twice.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from ebbflow.bus import Bus
from ebbflow.model import Labels, Sample
from ebbflow.names import SENDER_HEADER
from ebbflow.services import routing_name

from ..pipeline import BufferedOutput, DeliveryOptions, SendError
from ..serializers import FORMATS, LabelTextCache
from .config import KafkaConfig

PENDING = object()  # produced, its delivery not reported yet
DELIVERED = object()


def message_key(labels: Labels, host: str) -> str:
    """The service's name (what deciders compute their ownership from), or `node:<host>`."""
    return routing_name(dict(labels)) or f"node:{host}"


class KafkaOutput(BufferedOutput):
    def __init__(
        self,
        bus: Bus,
        name: str,
        config: KafkaConfig,
        options: DeliveryOptions,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(bus, options, clock, name)
        self.config = config
        self.serialize = FORMATS[config.format]
        self.host = socket.gethostname()
        self._producer: Producer | None = None
        # The batch last attempted and each message's state, kept across a retry: None
        # (not produced yet), PENDING, DELIVERED, or the error that failed it.
        self._attempt: tuple[list[Sample], list[object]] | None = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"ebbflow-{name}")

    def messages(self, samples: list[Sample]) -> list[tuple[bytes, bytes]]:
        """(key, value) per service, in the batch's order, none over max_message_bytes."""
        key_of = LabelTextCache(lambda labels: message_key(labels, self.host))
        by_key: dict[str, list[Sample]] = {}
        for sample in samples:
            key = key_of(sample.labels)
            group = by_key.get(key)
            if group is None:
                group = by_key[key] = []
            group.append(sample)
        messages = []
        for key, group in by_key.items():
            for value in self._chunks(group):
                messages.append((key.encode(), value))
        return messages

    def _chunks(self, group: list[Sample]) -> list[bytes]:
        value = self.serialize(group).encode()
        if len(value) <= self.config.max_message_bytes or len(group) == 1:
            return [value] if value else []
        half = len(group) // 2
        return self._chunks(group[:half]) + self._chunks(group[half:])

    def _connect(self) -> Producer:
        c = self.config
        timeout_ms = int(self.options.timeout * 1000)
        settings: dict[str, Any] = {
            **c.producer_options,
            "bootstrap.servers": ",".join(c.bootstrap_servers),
            "client.id": c.client_id,
            "acks": c.acks,
            "enable.idempotence": c.idempotent,
            "compression.type": c.compression,
            "message.max.bytes": c.max_message_bytes + 64 * 1024,
            "request.timeout.ms": timeout_ms,
            "socket.timeout.ms": timeout_ms,
            # Kept in the queue across the pipeline's retries while the broker is away,
            # for at most 5 minutes (librdkafka's default), then failed and produced again.
            "message.timeout.ms": 300_000,
            "linger.ms": 5,
            # Kafka's default partitioner (the Java client's): deciders compute it again.
            "partitioner": "murmur2_random",
            "logger": logging.getLogger("ebbflow.exporters.kafka.librdkafka"),
        }
        return Producer(settings)

    def _send_blocking(self, batch: list[Sample], messages: list[tuple[bytes, bytes]]) -> None:
        if self._attempt is None or self._attempt[0] is not batch:
            self._attempt = (batch, [None] * len(messages))
        states = self._attempt[1]

        try:
            if self._producer is None:
                self._producer = self._connect()
            self._produce(self._producer, messages, states)
            self._producer.flush(self.options.timeout * 0.8)
        except BufferError as err:  # the queue is full: the broker is away
            raise SendError(f"kafka producer queue full: {err}") from err
        except KafkaException as err:
            self._raise(err.args[0])
        failed = [state for state in states if isinstance(state, KafkaError)]
        if failed:
            self._raise(failed[0])
        if any(state is PENDING for state in states):
            where = ",".join(self.config.bootstrap_servers)
            raise SendError(f"kafka {where} topic {self.config.topic}: not delivered in time")
        self._attempt = None

    def _produce(
        self, producer: Producer, messages: list[tuple[bytes, bytes]], states: list[object]
    ) -> None:
        """Every message not produced yet, or failed, produced (again)."""

        def delivered(i: int) -> Callable[[KafkaError | None, object], None]:
            def report(err: KafkaError | None, _message: object) -> None:
                states[i] = DELIVERED if err is None else err

            return report

        headers: list[tuple[str, str | bytes | None]] = [(SENDER_HEADER, self.host.encode())]
        for i, (key, value) in enumerate(messages):
            if states[i] is None or isinstance(states[i], KafkaError):
                states[i] = PENDING
                producer.produce(self.config.topic, value, key, headers=headers,
                                 on_delivery=delivered(i))  # fmt: skip

    def _raise(self, err: KafkaError) -> None:
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            raise SendError(f"{self.config.topic}: {err.str()}", too_large=True)
        where = ",".join(self.config.bootstrap_servers)
        raise SendError(
            f"kafka {where} topic {self.config.topic}: {err.str()}",
            misconfigured=err.fatal() or not (err.retriable() or err.code() < 0),
        )

    async def send(self, samples: list[Sample]) -> None:
        messages = self.messages(samples)
        if messages:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._worker, self._send_blocking, samples, messages)

    def _close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.options.timeout)
            self._producer = None

    async def run(self) -> None:
        # A fresh worker each run: after a crash the supervisor runs this again.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"ebbflow-{self.name}")
        try:
            await super().run()
        finally:
            loop = asyncio.get_running_loop()
            await asyncio.shield(loop.run_in_executor(self._worker, self._close))
            self._worker.shutdown(wait=False)
