"""Prometheus remote-write 1.0 requests read: a snappy-compressed `WriteRequest`
(prompb: WriteRequest → TimeSeries → Label, Sample), decoded by hand as the output encodes
it, every length checked against the bytes there are: a hostile body is an error, never a
hang or an allocation past the bound."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import cramjam

DOUBLE = struct.Struct("<d")


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
    """(field number, wire type, payload) of a message's fields. Keys and lengths under
    128 (nearly all of them) are one byte, read without the general varint loop."""
    at, end = 0, len(data)
    while at < end:
        key = data[at]
        if key < 0x80:
            at += 1
        else:
            key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 2:
            size = data[at] if at < end else 0x80
            if size < 0x80:
                at += 1
            else:
                size, at = _varint(data, at)
            if at + size > end:
                raise BadRequestError("a field runs past the message")
            yield number, wire, data[at : at + size]
            at += size
        elif wire == 0:
            value, at = _varint(data, at)
            yield number, wire, value
        elif wire == 1:
            if at + 8 > end:
                raise BadRequestError("a fixed64 runs past the message")
            yield number, wire, data[at : at + 8]
            at += 8
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


def _label(data: bytes) -> tuple[str, str]:
    """A Label: name (field 1) and value (field 2). As every encoder writes it (two short
    strings, in order) it is sliced directly; anything else goes the general way."""
    end = len(data)
    if end >= 4 and data[0] == 0x0A and data[1] < 0x80:
        name_end = 2 + data[1]
        if name_end + 2 <= end and data[name_end] == 0x12 and data[name_end + 1] < 0x80:
            value_end = name_end + 2 + data[name_end + 1]
            if value_end == end:
                return (
                    data[2:name_end].decode("utf-8", errors="replace"),
                    data[name_end + 2 : value_end].decode("utf-8", errors="replace"),
                )
    pair = {n: _text(p) for n, w, p in fields(data) if w == 2}
    return pair.get(1, ""), pair.get(2, "")


def _series(data: bytes) -> Series:
    labels: list[tuple[str, str]] = []
    samples: list[tuple[float, int]] = []
    for number, wire, payload in fields(data):
        if wire != 2 or not isinstance(payload, bytes):
            continue
        if number == 1:
            labels.append(_label(payload))
        elif number == 2:
            samples.append(_sample(payload))
    return Series(tuple(labels), tuple(samples))


def _sample(payload: bytes) -> tuple[float, int]:
    """A Sample: value (field 1, a double) and timestamp (field 2, a varint), sliced
    directly as every encoder writes it; anything else goes the general way."""
    if len(payload) >= 11 and payload[0] == 0x09 and payload[9] == 0x10:
        stamp, end = _varint(payload, 10)
        if end == len(payload):
            value: float = DOUBLE.unpack_from(payload, 1)[0]
            return value, stamp - (1 << 64) if stamp >= 1 << 63 else stamp
    value, stamp = float("nan"), 0
    for n, w, p in fields(payload):
        if n == 1 and w == 1 and isinstance(p, bytes):
            value = struct.unpack("<d", p)[0]
        elif n == 2 and w == 0 and isinstance(p, int):
            stamp = p - (1 << 64) if p >= 1 << 63 else p
    return value, stamp


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
