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
import contextlib
import json
import logging
import os
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import Field

from ebbflow.bus import Bus
from ebbflow.config import FrozenModel
from ebbflow.logs import describe_error
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


SPOOL_FILE = "spool.log"
LEGACY_SPOOL_FILE = "spool.jsonl"  # unframed JSON lines, before records had checksums


def frame(samples: Iterable[Sample]) -> bytes:
    """One record: `<crc32 of the payload, 8 hex digits> <payload>\n`. JSON never holds a
    raw newline, so records are lines and a reader can always find the next one."""
    payload = encode(samples).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def unframe(line: bytes) -> list[Sample] | None:
    """The record's samples; None when it is torn, garbage or fails its checksum."""
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        return decode(payload.decode())
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


class Spool:
    """Batches on disk, one checksummed record a line, read in order; the read offset is
    kept in a side file, so a restart resumes where delivery stopped.

    Crash-safe: at start a torn tail (SIGKILL, power loss, a full disk) is cut off, an
    offset past the end is reset to the start and one inside a record is moved back to
    that record's start (a record may then go twice; one is never skipped). A record that
    fails its checksum is skipped when read. All that is cut or skipped is counted.
    """

    def __init__(self, directory: Path, max_bytes: int, name: str = "spool") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.path = directory / SPOOL_FILE
        self.offset_path = directory / "spool.offset"
        self.max_bytes = max_bytes
        self.cut_records = 0  # torn or corrupt records cut off or skipped
        self.full: str | None = None  # why the last append did not fit, while it does not
        self.offset_unsaved = False
        self.path.touch(exist_ok=True)
        self.offset = self._repaired_offset()
        self._cut_torn_tail()
        self._import_legacy(directory / LEGACY_SPOOL_FILE)

    def _repaired_offset(self) -> int:
        try:
            offset = int(self.offset_path.read_text() or 0)
        except (OSError, ValueError):
            offset = 0
        size = self.size
        if offset < 0 or offset > size:
            log.warning(
                "%s: read offset %d lies outside the spool (%d bytes); replaying it all",
                self.name,
                offset,
                size,
            )
            return 0
        if offset == 0 or offset == size:
            return offset
        with open(self.path, "rb") as f:
            f.seek(offset - 1)
            if f.read(1) == b"\n":
                return offset
            f.seek(0)
            start = f.read(offset).rfind(b"\n") + 1
        log.warning(
            "%s: read offset %d points inside a record; resuming at its start, %d",
            self.name,
            offset,
            start,
        )
        return start

    def _cut_torn_tail(self) -> None:
        size = self.size
        if size == 0:
            return
        with open(self.path, "rb+") as f:
            tail_at = max(0, size - (1 << 16))
            while True:
                f.seek(tail_at)
                chunk = f.read(size - tail_at)
                end = chunk.rfind(b"\n")
                if end >= 0 or tail_at == 0:
                    break
                tail_at = max(0, tail_at - (1 << 16))
            keep = tail_at + end + 1 if end >= 0 else 0
            if keep == size:
                return
            f.truncate(keep)
        self.cut_records += 1
        self.offset = min(self.offset, keep)
        log.warning("%s: cut off a torn last record (%d bytes)", self.name, size - keep)

    def _import_legacy(self, legacy: Path) -> None:
        if not legacy.exists():
            return
        batches = []
        for line in legacy.read_text(errors="replace").splitlines(keepends=True):
            try:
                batches.append(decode(line))
            except (ValueError, TypeError):
                self.cut_records += 1
        if self.append(*batches):
            legacy.unlink()

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def pending_bytes(self) -> int:
        return max(0, self.size - self.offset)

    def append(self, *batches: list[Sample]) -> bool:
        """All the batches, or none when they do not fit (the caller decides what then).
        A full disk is the same as a full spool: the file is cut back to its last whole
        record and nothing of these batches is kept."""
        data = b"".join(frame(samples) for samples in batches)
        if self.pending_bytes + len(data) > self.max_bytes:
            return self._no_room("its size limit")
        size = self.size
        try:
            with open(self.path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            with contextlib.suppress(OSError):
                os.truncate(self.path, size)
            return self._no_room(err.strerror or repr(err))
        if self.full is not None:
            log.info("%s: has room again", self.name)
            self.full = None
        return True

    def _no_room(self, why: str) -> bool:
        if self.full is None:
            log.error("%s: full (%s): what does not fit in memory is dropped", self.name, why)
        self.full = why
        return False

    def peek(self) -> tuple[list[Sample], int] | None:
        """The oldest unsent batch and the offset just after it; a record that fails its
        checksum is skipped (counted, and committed past, so it is read once)."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            while line := f.readline():
                if not line.endswith(b"\n"):
                    return None  # being written right now
                samples = unframe(line)
                if samples is not None:
                    return samples, f.tell()
                self.cut_records += 1
                log.warning(
                    "%s: skipped a corrupt record at offset %d (%d bytes)",
                    self.name,
                    f.tell() - len(line),
                    len(line),
                )
                self.commit(f.tell())
                if self.offset == 0:
                    return None  # that was the last record: the file started afresh
        return None

    def pending(self) -> Iterator[list[Sample]]:
        """Every intact batch not yet sent, oldest first, without committing."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for line in f:
                samples = unframe(line)
                if samples is not None:
                    yield samples

    def commit(self, offset: int) -> None:
        """Move the read offset past what was sent. On a full disk the offset may not be
        saved: delivery goes on from memory's offset, and a restart before it is saved
        sends those records again (at least once, never lost)."""
        self.offset = offset
        if self.offset >= self.size:  # all sent: start afresh (truncating needs no space)
            os.truncate(self.path, 0)
            self.offset = 0
        tmp = self.offset_path.with_suffix(".tmp")
        try:
            tmp.write_text(str(self.offset))
            os.replace(tmp, self.offset_path)
        except OSError as err:
            if not self.offset_unsaved:
                log.warning("%s: cannot save its read offset: %s", self.name, err.strerror)
            self.offset_unsaved = True
            return
        if self.offset_unsaved:
            log.info("%s: saves its read offset again", self.name)
            self.offset_unsaved = False


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

    # -- intake --------------------------------------------------------------------------
    def accept(self, samples: Iterable[Sample]) -> None:
        self.buffer.extend(samples)
        overflow = len(self.buffer) - self.options.max_buffered
        while overflow > 0:  # spill the oldest, a batch at a time, to keep order
            size = min(self.options.batch_size, len(self.buffer))
            oldest = [self.buffer.popleft() for _ in range(size)]
            overflow -= size
            if self.spool is None:
                self.dropped["buffer_full"] += len(oldest)
            elif not self.spool.append(oldest):
                self.dropped["spool_full"] += len(oldest)
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
        labels = labels_of({"output": self.name})
        yield Sample(
            "ebbflow_output_up",
            1.0 if self.up else 0.0,
            labels,
            now,
            "gauge",
            "1 while the output runs and its last delivery succeeded.",
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
        yield Sample(
            "ebbflow_output_spool_records_cut_total",
            self.spool.cut_records if self.spool else 0,
            labels,
            now,
            "counter",
            "Torn or corrupt spool records cut off at start or skipped when read.",
        )
        for reason in ("rejected", "buffer_full", "spool_full", "error"):
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
