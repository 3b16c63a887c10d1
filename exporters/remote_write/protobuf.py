"""Prometheus remote-write 1.0 request bodies: a `WriteRequest` protobuf, snappy-compressed.

The message is small and fixed (prompb: WriteRequest → TimeSeries → Label, Sample), so it
is encoded here by hand rather than pulling in protobuf and generated code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import cramjam

from ebbflow.model import Labels, Sample


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _label(name: str, value: str) -> bytes:
    return _field(1, _field(1, name.encode()) + _field(2, value.encode()))


def _sample(value: float, timestamp_ms: int) -> bytes:
    # value: field 1, fixed64 (wire type 1); timestamp: field 2, varint (wire type 0)
    body = b"\x09" + struct.pack("<d", value) + b"\x10" + _varint(timestamp_ms & (2**64 - 1))
    return _field(2, body)


def write_request(samples: Iterable[Sample]) -> bytes:
    """The uncompressed WriteRequest: one TimeSeries per series, samples in time order."""
    series: dict[tuple[str, Labels], list[Sample]] = {}
    for s in samples:
        points = series.get((s.name, s.labels))
        if points is None:
            points = series[(s.name, s.labels)] = []
        points.append(s)
    labels_bytes: dict[Labels, bytes] = {}
    out = bytearray()
    for (name, labels), points in series.items():
        encoded = labels_bytes.get(labels)
        if encoded is None:
            # `__name__` sorts before every lowercase label name but after uppercase ones.
            encoded = labels_bytes[labels] = b"".join(
                _label(k, v) for k, v in sorted((k, v) for k, v in labels if v)
            )
        if len(points) > 1:
            points.sort(key=lambda p: p.timestamp)
        body = _named(name, labels, encoded) + b"".join(
            _sample(p.value, round(p.timestamp * 1000)) for p in points
        )
        out += _field(1, body)
    return bytes(out)


def _named(name: str, labels: Labels, encoded: bytes) -> bytes:
    """The label fields with `__name__` in its sorted place."""
    before = sum(1 for k, v in labels if v and k < "__name__")
    if before == 0:
        return _label("__name__", name) + encoded
    return b"".join(
        _label(k, v) for k, v in sorted([("__name__", name), *((k, v) for k, v in labels if v)])
    )


def compressed_write_request(samples: Iterable[Sample]) -> bytes:
    return bytes(cramjam.snappy.compress_raw(write_request(samples)))
