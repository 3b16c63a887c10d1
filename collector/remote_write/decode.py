"""Prometheus remote-write 1.0 requests read: a snappy-compressed `WriteRequest`
(prompb: WriteRequest → TimeSeries → Label, Sample), decoded by hand as the output encodes
it, every length checked against the bytes there are: a hostile body is an error, never a
hang or an allocation past the bound."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import cramjam


class BadRequestError(ValueError):
    """The body is no WriteRequest this receiver takes; the message says why."""


@dataclass(frozen=True, slots=True)
class Series:
    labels: tuple[tuple[str, str], ...]  # __name__ included, as sent
    samples: tuple[tuple[float, int], ...]  # (value, timestamp in ms)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise BadRequestError("a varint runs past the message")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, payload) of a message's fields."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, wire, value
        elif wire == 1:
            if at + 8 > len(data):
                raise BadRequestError("a fixed64 runs past the message")
            yield number, wire, data[at : at + 8]
            at += 8
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise BadRequestError("a field runs past the message")
            yield number, wire, data[at : at + size]
            at += size
        elif wire == 5:
            if at + 4 > len(data):
                raise BadRequestError("a fixed32 runs past the message")
            yield number, wire, data[at : at + 4]
            at += 4
        else:
            raise BadRequestError(f"wire type {wire} is not protobuf's")


def _text(payload: bytes | int) -> str:
    if not isinstance(payload, bytes):
        raise BadRequestError("a label is not a string")
    return payload.decode("utf-8", errors="replace")


def _series(data: bytes) -> Series:
    labels: list[tuple[str, str]] = []
    samples: list[tuple[float, int]] = []
    for number, wire, payload in fields(data):
        if wire != 2 or not isinstance(payload, bytes):
            continue
        if number == 1:
            pair = {n: _text(p) for n, w, p in fields(payload) if w == 2}
            labels.append((pair.get(1, ""), pair.get(2, "")))
        elif number == 2:
            value, stamp = float("nan"), 0
            for n, w, p in fields(payload):
                if n == 1 and w == 1 and isinstance(p, bytes):
                    value = struct.unpack("<d", p)[0]
                elif n == 2 and w == 0 and isinstance(p, int):
                    stamp = p - (1 << 64) if p >= 1 << 63 else p
            samples.append((value, stamp))
    return Series(tuple(labels), tuple(samples))


def uncompressed_length(body: bytes) -> int:
    """What a snappy block says it will decompress to (its first varint)."""
    try:
        length, _ = _varint(body, 0)
    except BadRequestError:
        raise BadRequestError("not a snappy block") from None
    return length


def decode(body: bytes, max_uncompressed: int, max_series: int) -> list[Series]:
    length = uncompressed_length(body)
    if length > max_uncompressed:
        raise BadRequestError(f"{length} bytes uncompressed, over {max_uncompressed}")
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except Exception as err:  # cramjam's own error type
        raise BadRequestError(f"not snappy: {err}") from None
    found = []
    for number, wire, payload in fields(raw):
        if number == 1 and wire == 2 and isinstance(payload, bytes):
            found.append(_series(payload))
            if len(found) > max_series:
                raise BadRequestError(f"over {max_series} series in one request")
    return found
