"""Docker's event stream, read with a bound on every line.

Docker writes one JSON object a line; an event carries every label of its container, so a
container with a megabyte label makes a megabyte line. aiohttp's line reader gives up on
such a line (`LineTooLong`) and takes the whole stream down with it, for every instance on
the engine. This reader keeps at most `max_line` bytes of a line: a longer one is skipped
to its end and counted, and what its head says (the action and the container id come
first in Docker's JSON) is still handed on, so the container is inspected and nothing is
missed. A line that is not JSON is skipped and counted too.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CHUNK = 1 << 16
HEAD = 4096  # bytes of a skipped line kept to read its action and id from
_STATUS = re.compile(rb'"(?:status|Action)"\s*:\s*"([a-z_]+[^"]{0,64})"')
_ID = re.compile(rb'"(?:id|ID)"\s*:\s*"([0-9a-f]{12,64})"')


@dataclass
class StreamCounts:
    """What the reader could not hold, by reason; read by discovery's telemetry."""

    skipped: dict[str, int] = field(default_factory=lambda: {"too_long": 0, "not_json": 0})


def head_of(line: bytes) -> dict[str, Any] | None:
    """The action and container id of an event whose line was too long to keep."""
    status, cid = _STATUS.search(line), _ID.search(line)
    if status is None or cid is None:
        return None
    return {"status": status.group(1).decode(), "id": cid.group(1).decode(), "truncated": True}


class EventLines:
    """Splits the stream into events, keeping at most `max_line` bytes of any line."""

    def __init__(self, max_line: int, counts: StreamCounts) -> None:
        self.max_line = max_line
        self.counts = counts
        self._line = bytearray()
        self._skipping: bytearray | None = None  # the head of a line past max_line

    def feed(self, chunk: bytes) -> list[Mapping[str, Any]]:
        """The events whose lines end in this chunk."""
        found = []
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            self._take(chunk[start:] if end < 0 else chunk[start:end])
            if end < 0:
                break
            start = end + 1
            event = self._end_of_line()
            if event is not None:
                found.append(event)
        return found

    def _take(self, piece: bytes) -> None:
        if self._skipping is not None:
            if len(self._skipping) < HEAD:
                self._skipping += piece[: HEAD - len(self._skipping)]
            return
        self._line += piece
        if len(self._line) > self.max_line:  # from here on, only its head is kept
            self._skipping, self._line = bytearray(self._line[:HEAD]), bytearray()

    def _end_of_line(self) -> Mapping[str, Any] | None:
        if self._skipping is not None:
            self.counts.skipped["too_long"] += 1
            head, self._skipping = head_of(bytes(self._skipping)), None
            return head
        line, self._line = bytes(self._line), bytearray()
        if not line.strip():
            return None
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.counts.skipped["not_json"] += 1
            return None
        return event


async def events(
    response: aiohttp.ClientResponse, max_line: int, counts: StreamCounts
) -> AsyncIterator[Mapping[str, Any]]:
    """The stream's events, as dicts; ends when the stream does."""
    lines = EventLines(max_line, counts)
    async for chunk in response.content.iter_chunked(CHUNK):
        for event in lines.feed(chunk):
            yield event


class BodyTooLargeError(Exception):
    """An engine's answer past the bound ebbflow reads."""


async def read_bounded(response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body, or BodyTooLargeError once it passes `limit` bytes (read no further)."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError(f"{what}: answer over {limit} bytes; not read further")
    return bytes(body)
