"""The delivery pipeline every push output builds on: nothing is lost silently.

Samples come off the output's own bus subscription at once (so a slow or dead server
never slows collection or decisions) into a bounded memory buffer. Batches go out by
size or time; a failed batch is retried with exponential backoff and jitter, honouring
`Retry-After`; a batch the server finds too large is split; a batch it rejects for good
(a permanent 4xx) is dropped with the server's reason logged. When the memory bound is
reached, the oldest batches spill to a size-capped spool file on disk (`buffer/`), which
is replayed in order — also after a restart — before newer data. While the server is
away, a batch that failed and whatever comes in after it go to the spool within a flush
interval, so a crash (even SIGKILL) loses at most that interval. Every count is a metric.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import Field

from ebbflow.bus import Bus
from ebbflow.config import FrozenModel
from ebbflow.logs import describe_error
from ebbflow.metrics import Desc
from ebbflow.model import Sample, SampleBatch

from .buffer import MemoryBuffer, Spool

log = logging.getLogger("ebbflow.exporters")

OUTPUT_UP = Desc(
    "ebbflow_output_up", "1 while the output runs and its last delivery succeeded.", "gauge",
    ("output",),
)  # fmt: skip
QUEUE = Desc(
    "ebbflow_output_queue_samples", "Samples waiting in memory for an output.", "gauge",
    ("output",),
)  # fmt: skip
SPOOL_BYTES = Desc(
    "ebbflow_output_spool_bytes", "Bytes waiting in an output's disk spool.", "gauge", ("output",)
)
SENT = Desc(
    "ebbflow_output_sent_samples_total", "Samples an output delivered.", "counter", ("output",)
)
RETRIES = Desc(
    "ebbflow_output_retries_total", "Failed deliveries that were retried.", "counter", ("output",)
)
CUT = Desc(
    "ebbflow_output_spool_records_cut_total",
    "Torn or corrupt spool records cut off at start or skipped when read.",
    "counter",
    ("output",),
)
DROPPED = Desc(
    "ebbflow_output_dropped_samples_total",
    "Samples an output dropped, by reason.",
    "counter",
    ("output", "reason"),
)


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
        self.buffer = MemoryBuffer(options.max_buffered, options.batch_size)
        self.spool = (
            Spool(options.spool_dir, options.spool_max_bytes, f"output {self.name}: spool")
            if options.spool_dir
            else None
        )
        self.sent = self.retries = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.last_send_ok = True
        self.last_error = ""
        self.running = False
        self._wake = asyncio.Event()

    @abc.abstractmethod
    async def send(self, samples: list[Sample]) -> None:
        """Deliver one batch, or raise SendError saying why not."""

    @property
    def up(self) -> bool:
        """Running, and its last send went through: what `ebbflow_output_up` says."""
        return self.running and self.last_send_ok

    def health_problem(self) -> str | None:
        if self.running and not self.last_send_ok:
            return f"cannot deliver: {self.last_error}"
        return None

    def dependencies(self) -> dict[str, str | None]:
        return {f"output {self.name}": self.health_problem()}

    # -- intake --------------------------------------------------------------------------
    def accept(self, samples: Iterable[Sample]) -> None:
        self.dropped.update(self.buffer.add(samples, self.spool))
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
                    self.buffer.put_back(part)
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
            except (SendError, aiohttp.ClientError, OSError, TimeoutError) as err:
                # every failure to deliver is a retry, never the end of the output
                error = err if isinstance(err, SendError) else SendError(describe_error(err))
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
                self.last_error = str(error)
                if self.last_send_ok:
                    if error.misconfigured:
                        log.error(
                            "output %s: the server refused its settings (%s); check the "
                            "output's credentials and database; samples are kept and retried",
                            self.name,
                            error,
                        )
                    else:
                        log.warning("output %s is unavailable: %s; retrying", self.name, error)
                    self.last_send_ok = False
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
            except Exception as err:
                # Not the server: this batch cannot be sent at all (it raised while being
                # encoded, say). Retrying it would stop every batch after it, so it alone
                # is dropped, counted and named.
                pending.pop(0)
                self.dropped["error"] += len(part)
                log.error(
                    "output %s: dropped a batch of %d samples that cannot be sent: %s",
                    self.name,
                    len(part),
                    describe_error(err),
                    exc_info=err,
                )
                continue
            pending.pop(0)
            if not self.last_send_ok:
                log.info("output %s recovered", self.name)
                self.last_send_ok = True
            self.sent += len(part)

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
            batch = self.buffer.take()
            if batch:
                await self.deliver(batch)

    def spill(self) -> bool:
        """Memory to the spool, a batch at a time; False once the spool is full."""
        return self.spool is None or self.buffer.spill(self.spool)

    async def _spill_while_down(self) -> None:
        while True:
            await asyncio.sleep(self.options.flush_interval)
            if not self.last_send_ok:
                self.spill()  # if the spool is full, memory holds the rest up to its bound

    async def run(self) -> None:
        self.running = True
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._intake())
                group.create_task(self._deliveries())
                if self.spool is not None:
                    group.create_task(self._spill_while_down())
        finally:
            self.running = False
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
        name = self.name
        yield OUTPUT_UP.sample(1.0 if self.up else 0.0, now, name)
        yield QUEUE.sample(len(self.buffer), now, name)
        yield SPOOL_BYTES.sample(self.spool.pending_bytes if self.spool else 0, now, name)
        yield SENT.sample(self.sent, now, name)
        yield RETRIES.sample(self.retries, now, name)
        yield CUT.sample(self.spool.cut_records if self.spool else 0, now, name)
        for reason in ("rejected", "buffer_full", "spool_full", "error"):
            yield DROPPED.sample(self.dropped[reason], now, name, reason)
