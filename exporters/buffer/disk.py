"""The disk half of an output's buffer: a size-capped spool of checksummed records.

What does not fit in memory, and what a failed batch and whatever comes after it would
otherwise hold in memory while the server is away, is written here and replayed in order,
also after a restart, before newer data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from ebbflow.model import Sample, labels_of

log = logging.getLogger("ebbflow.exporters")


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
