"""The Kafka output: one topic, messages keyed by service.

Keying by service puts one service's samples in one partition, in order, which is what a
rule engine consuming the topic (one consumer group, one owner per service) needs. A batch
becomes one message per service (split at `max_message_bytes`), each holding that
service's samples as line protocol or JSON lines; series of no container (node, ebbflow's
own) are keyed `node:<host>`.

kafka-python is blocking, so every call runs on one worker thread of this output's own;
the event loop never waits on a broker. A batch that timed out keeps its messages in the
producer: the retry waits for those and resends only the ones that failed, so a slow broker
does not get the same samples twice. kafka-python's own logging, one line per failed
connection attempt, is quieted; this output logs when the broker goes away and comes back.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError
from kafka.producer.future import FutureRecordMetadata

from ebbflow.bus import Bus
from ebbflow.model import Labels, Sample
from ebbflow.services import format_service_key, series_service

from ..pipeline import BufferedOutput, DeliveryOptions, SendError
from ..serializers import FORMATS, LabelTextCache
from .config import KafkaConfig


def message_key(labels: Labels, host: str) -> str:
    service = series_service(dict(labels))
    return format_service_key(service) if service else f"node:{host}"


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
        self._producer: KafkaProducer | None = None
        # The batch last attempted and its messages' futures, kept across a retry.
        self._attempt: tuple[list[Sample], list[FutureRecordMetadata | None]] | None = None
        kafka_log = logging.getLogger("kafka")
        if kafka_log.level == logging.NOTSET:
            kafka_log.setLevel(logging.CRITICAL)
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

    def _connect(self) -> KafkaProducer:
        c = self.config
        timeout_ms = int(self.options.timeout * 1000)
        settings: dict[str, Any] = {
            "bootstrap_servers": list(c.bootstrap_servers),
            "client_id": c.client_id,
            "acks": c.acks,
            "enable_idempotence": c.idempotent,
            "compression_type": None if c.compression == "none" else c.compression,
            "max_request_size": c.max_message_bytes + 64 * 1024,
            "request_timeout_ms": timeout_ms,
            "max_block_ms": timeout_ms // 2,
            "api_version_auto_timeout_ms": timeout_ms // 2,
            "linger_ms": 5,
        }
        return KafkaProducer(**(settings | c.producer_options))

    def _send_blocking(self, batch: list[Sample], messages: list[tuple[bytes, bytes]]) -> None:
        if self._attempt is None or self._attempt[0] is not batch:
            self._attempt = (batch, [None] * len(messages))
        futures = self._attempt[1]
        try:
            if self._producer is None:
                self._producer = self._connect()
            for i, (key, value) in enumerate(messages):
                future = futures[i]
                if future is None or (future.is_done and future.failed()):
                    futures[i] = self._producer.send(self.config.topic, key=key, value=value)
            self._producer.flush(timeout=self.options.timeout * 0.8)
            for future in futures:
                assert future is not None
                future.get(timeout=0)
            self._attempt = None
        except MessageSizeTooLargeError as err:
            raise SendError(f"{self.config.topic}: {err}", too_large=True) from err
        except KafkaError as err:
            where = ",".join(self.config.bootstrap_servers)
            raise SendError(
                f"kafka {where} topic {self.config.topic}: {err!r}",
                misconfigured=not err.retriable,
            ) from err

    async def send(self, samples: list[Sample]) -> None:
        messages = self.messages(samples)
        if messages:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._worker, self._send_blocking, samples, messages)

    def _close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self.options.timeout)
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
