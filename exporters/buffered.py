"""The delivery pipeline every push output builds on: nothing is lost silently.

Samples come off the output's own bus subscription at once (so a slow or dead server
never slows collection or decisions) into a bounded memory buffer. Batches go out by
size or time; a failed batch is retried with exponential backoff and jitter, honouring
`Retry-After`; a batch the server finds too large is split; a batch it rejects for good
(a permanent 4xx) is dropped with the server's reason logged. When the memory bound is
reached, the oldest batches spill to a size-capped spool file on disk, which is replayed
in order — also after a restart — before newer data. While the server is away, a batch that
failed and whatever comes in after it go to the spool within a flush interval, so a crash
(even SIGKILL) loses at most that interval. Every count is a metric.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import Field

from ebbflow.bus import Bus
from ebbflow.config import FrozenModel
from ebbflow.model import Sample, SampleBatch, labels_of

log = logging.getLogger("ebbflow.exporters")


class SendError(Exception):
    """Why a batch did not go. `retry` false means the server rejected it for good."""

    def __init__(
        self,
        message: str,
        *,
        retry: bool = True,
        too_large: bool = False,
        retry_after: float | None = None,
        misconfigured: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry = retry
        self.too_large = too_large
        self.retry_after = retry_after
        self.misconfigured = misconfigured


# Worth retrying as they are; 5xx too.
RETRYABLE_STATUS = frozenset({408, 425, 429})
# Wrong credentials or an unknown database/bucket: the batch is fine, the settings are not.
# Dropping would lose everything until someone notices, so the samples are kept (and
# spooled) and retried until the operator fixes the output.
MISCONFIGURED_STATUS = frozenset({401, 403, 404})


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def http_error(url: str, status: int, answer: str, retry_after: str | None) -> SendError:
    """What a push output makes of an HTTP answer of 300 or more."""
    message = f"{url} answered {status}: {answer[:300].strip()}"
    if status == 413:
        return SendError(message, too_large=True)
    if status in MISCONFIGURED_STATUS:
        return SendError(message, misconfigured=True)
    if status in RETRYABLE_STATUS or status >= 500:
        return SendError(message, retry_after=_retry_after(retry_after))
    return SendError(message, retry=False)


@dataclass(frozen=True)
class DeliveryOptions:
    batch_size: int = 5000
    flush_interval: float = 1.0
    max_buffered: int = 100_000  # samples held in memory before spilling to disk
    spool_dir: Path | None = None  # None: no spool; what does not fit is dropped, counted
    spool_max_bytes: int = 256 * 1024 * 1024
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    timeout: float = 10.0


class DeliveryConfig(FrozenModel):
    """The delivery settings every push output's config shares."""

    batch_size: int = Field(5000, ge=1)
    flush_interval: float = Field(1.0, gt=0)
    max_buffered: int = Field(100_000, ge=1, description="Samples in memory before spooling.")
    spool_dir: Path | None = Field(None, description="Default: spool/<output> beside the state.")
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    timeout: float = Field(10.0, gt=0)
    backoff_initial: float = Field(1.0, gt=0, description="First wait after a failed send.")
    backoff_max: float = Field(60.0, gt=0, description="Longest wait between retries.")

    def delivery(self, default_spool: Path) -> DeliveryOptions:
        return DeliveryOptions(
            batch_size=self.batch_size,
            flush_interval=self.flush_interval,
            max_buffered=self.max_buffered,
            spool_dir=self.spool_dir or default_spool,
            spool_max_bytes=self.spool_max_bytes,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
            timeout=self.timeout,
        )


def encode(samples: Iterable[Sample]) -> str:
    return json.dumps([[s.name, s.value, s.labels, s.timestamp, s.kind] for s in samples])


def decode(line: str) -> list[Sample]:
    return [
        Sample(n, float(v), labels_of(dict(lb)), float(t), k) for n, v, lb, t, k in json.loads(line)
    ]


class Spool:
    """Batches on disk, one JSON line each, read in order; the read offset is kept in a
    side file, so a restart resumes where delivery stopped."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "spool.jsonl"
        self.offset_path = directory / "spool.offset"
        self.max_bytes = max_bytes
        self.path.touch(exist_ok=True)
        try:
            self.offset = int(self.offset_path.read_text() or 0)
        except (OSError, ValueError):
            self.offset = 0

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def pending_bytes(self) -> int:
        return max(0, self.size - self.offset)

    def append(self, *batches: list[Sample]) -> bool:
        """All the batches, or none when they do not fit (the caller decides what then)."""
        text = "".join(encode(samples) + "\n" for samples in batches)
        if self.pending_bytes + len(text.encode()) > self.max_bytes:
            return False
        with open(self.path, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return True

    def peek(self) -> tuple[list[Sample], int] | None:
        """The oldest unsent batch and the offset just after it."""
        with open(self.path) as f:
            f.seek(self.offset)
            line = f.readline()
        if not line.endswith("\n"):
            return None  # nothing, or a torn last line from a crash: not ours to send
        return decode(line), self.offset + len(line.encode())

    def commit(self, offset: int) -> None:
        self.offset = offset
        if self.offset >= self.size:  # all sent: start afresh
            self.path.write_text("")
            self.offset = 0
        tmp = self.offset_path.with_suffix(".tmp")
        tmp.write_text(str(self.offset))
        os.replace(tmp, self.offset_path)


class BufferedOutput(abc.ABC):
    """A push output: subclasses write `send` (and `telemetry` extras)."""

    name: str

    def __init__(
        self,
        bus: Bus,
        options: DeliveryOptions,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
    ) -> None:
        if name is not None:
            self.name = name
        self.options = options
        self.clock = clock
        self.subscription = bus.subscribe(self.name, SampleBatch, capacity=10_000)
        self.buffer: collections.deque[Sample] = collections.deque()
        self.spool = (
            Spool(options.spool_dir, options.spool_max_bytes) if options.spool_dir else None
        )
        self.sent = self.retries = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.up = True
        self._wake = asyncio.Event()

    @abc.abstractmethod
    async def send(self, samples: list[Sample]) -> None:
        """Deliver one batch, or raise SendError saying why not."""

    # -- intake --------------------------------------------------------------------------
    def accept(self, samples: Iterable[Sample]) -> None:
        self.buffer.extend(samples)
        overflow = len(self.buffer) - self.options.max_buffered
        while overflow > 0:  # spill the oldest, a batch at a time, to keep order
            size = min(self.options.batch_size, len(self.buffer))
            oldest = [self.buffer.popleft() for _ in range(size)]
            overflow -= size
            if self.spool is None or not self.spool.append(oldest):
                self.dropped["buffer_full"] += len(oldest)
        if len(self.buffer) >= self.options.batch_size:
            self._wake.set()

    async def _intake(self) -> None:
        async for event in self.subscription:
            if isinstance(event, SampleBatch) and not event.repeat:
                self.accept(event.samples)

    # -- delivery ------------------------------------------------------------------------
    async def deliver(self, batch: list[Sample], from_memory: bool = True) -> None:
        """Send with retries until sent or dropped for good. Cut off (shutdown), a batch
        taken from memory goes back to the front of the buffer, to be spooled; one read
        from the spool is still there, uncommitted."""
        pending = [batch]
        try:
            await self._deliver(pending, from_memory)
        except asyncio.CancelledError:
            if from_memory:
                for part in reversed(pending):
                    self.buffer.extendleft(reversed(part))
            raise

    async def _deliver(self, pending: list[list[Sample]], from_memory: bool) -> None:
        """`pending[0]` leaves the list once it is sent or dropped for good, or — when it
        came from memory and the server is away — once it is safe in the spool, to be sent
        from there."""
        backoff = self.options.backoff_initial
        while pending:
            part = pending[0]
            try:
                async with asyncio.timeout(self.options.timeout):
                    await self.send(part)
            except (SendError, TimeoutError, OSError) as err:
                error = err if isinstance(err, SendError) else SendError(repr(err))
                if error.too_large and len(part) > 1:
                    half = len(part) // 2
                    pending[:1] = [part[:half], part[half:]]
                    continue
                if not error.retry:
                    pending.pop(0)
                    self.dropped["rejected"] += len(part)
                    log.error(
                        "output %s: dropped %d samples the server rejected: %s",
                        self.name,
                        len(part),
                        error,
                    )
                    continue
                if self.up:
                    if error.misconfigured:
                        log.error(
                            "output %s: the server refused its settings (%s); check the "
                            "output's credentials and database; samples are kept and retried",
                            self.name,
                            error,
                        )
                    else:
                        log.warning("output %s is unavailable: %s; retrying", self.name, error)
                    self.up = False
                self.retries += 1
                if from_memory and self.spool is not None and self.spool.append(*pending):
                    pending.clear()
                    return
                wait = (
                    error.retry_after
                    if error.retry_after is not None
                    else backoff * random.uniform(0.5, 1.5)
                )
                backoff = min(self.options.backoff_max, backoff * 2)
                await asyncio.sleep(wait)
                continue
            pending.pop(0)
            if not self.up:
                log.info("output %s recovered", self.name)
                self.up = True
            self.sent += len(part)

    def _next_from_memory(self) -> list[Sample]:
        size = min(self.options.batch_size, len(self.buffer))
        return [self.buffer.popleft() for _ in range(size)]

    async def _deliveries(self) -> None:
        while True:
            if self.spool is not None and (spooled := self.spool.peek()) is not None:
                batch, offset = spooled
                await self.deliver(batch, from_memory=False)
                self.spool.commit(offset)
                continue
            if not self.buffer:
                self._wake.clear()
                try:
                    async with asyncio.timeout(self.options.flush_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                if not self.buffer:
                    continue
            elif len(self.buffer) < self.options.batch_size:
                await asyncio.sleep(self.options.flush_interval)  # gather a fuller batch
            batch = self._next_from_memory()
            if batch:
                await self.deliver(batch)

    def spill(self) -> bool:
        """Memory to the spool, a batch at a time; False once the spool is full."""
        while self.buffer and self.spool is not None:
            size = min(self.options.batch_size, len(self.buffer))
            if not self.spool.append([self.buffer[i] for i in range(size)]):
                return False
            for _ in range(size):
                self.buffer.popleft()
        return True

    async def _spill_while_down(self) -> None:
        while True:
            await asyncio.sleep(self.options.flush_interval)
            if not self.up:
                self.spill()  # if the spool is full, memory holds the rest up to its bound

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._intake())
                group.create_task(self._deliveries())
                if self.spool is not None:
                    group.create_task(self._spill_while_down())
        finally:
            self.save_on_exit()

    def save_on_exit(self) -> None:
        """What is still queued or in memory goes to the spool, to be sent after a restart."""
        while (event := self.subscription.get_nowait()) is not None:
            if isinstance(event, SampleBatch) and not event.repeat:
                self.accept(event.samples)
        if self.spool is not None and not self.spill():
            self.dropped["spool_full"] += len(self.buffer)
            self.buffer.clear()

    def telemetry(self, now: float) -> Iterable[Sample]:
        labels = labels_of({"output": self.name})
        yield Sample(
            "ebbflow_output_up",
            1.0 if self.up else 0.0,
            labels,
            now,
            "gauge",
            "1 while the output's last delivery succeeded.",
        )
        yield Sample(
            "ebbflow_output_queue_samples",
            len(self.buffer),
            labels,
            now,
            "gauge",
            "Samples waiting in memory for an output.",
        )
        yield Sample(
            "ebbflow_output_spool_bytes",
            self.spool.pending_bytes if self.spool else 0,
            labels,
            now,
            "gauge",
            "Bytes waiting in an output's disk spool.",
        )
        yield Sample(
            "ebbflow_output_sent_samples_total",
            self.sent,
            labels,
            now,
            "counter",
            "Samples an output delivered.",
        )
        yield Sample(
            "ebbflow_output_retries_total",
            self.retries,
            labels,
            now,
            "counter",
            "Failed deliveries that were retried.",
        )
        for reason in ("rejected", "buffer_full", "spool_full"):
            yield Sample(
                "ebbflow_output_dropped_samples_total",
                self.dropped[reason],
                labels_of({"output": self.name, "reason": reason}),
                now,
                "counter",
                "Samples an output dropped, by reason.",
            )


class HttpOutput(BufferedOutput):
    """A push output that POSTs each batch: one aiohttp session for its life."""

    _session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if self._session is not None:
                await self._session.close()
