"""InfluxDB line protocol and StatsD (with DogStatsD tags), one line → parsed points.

Both raise ValueError with what was wrong, so a malformed line can be counted and
reported without stopping the datagram's other lines. A value is always a finite number:
NaN, ±inf and numbers past float, int64 or uint64 range are rejected, as InfluxDB does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def metric_name(text: str) -> str:
    name = INVALID.sub("_", text)
    return "_" + name if name[:1].isdigit() else name


def label_name(text: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", "_", text)
    return "_" + name if name[:1].isdigit() else name


@dataclass(frozen=True, slots=True)
class LinePoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, float]
    timestamp: float | None


def _split(text: str, sep: str, limit: int = -1) -> list[str]:
    """Split at `sep` outside quotes and not escaped by a backslash."""
    if "\\" not in text and '"' not in text:  # the common case, at C speed
        return text.split(sep, limit)
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == sep and not quoted and (limit < 0 or len(parts) < limit):
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ValueError("unterminated string")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


INT64 = (-(2**63), 2**63 - 1)
UINT64 = (0, 2**64 - 1)
NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")  # no inf, nan, 1_000 or +5


def finite(value: float, raw: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not a finite number")
    return value


def _field_value(raw: str) -> float | None:
    """Numbers and booleans; None for strings, which have no numeric value to export."""
    if raw.startswith('"'):
        return None
    if raw in ("t", "T", "true", "True", "TRUE"):
        return 1.0
    if raw in ("f", "F", "false", "False", "FALSE"):
        return 0.0
    if raw[-1:] in ("i", "u"):
        digits = raw[:-1]
        if not re.fullmatch(r"-?\d{1,20}", digits):
            raise ValueError(f"{raw!r} is not an integer")
        low, high = INT64 if raw[-1] == "i" else UINT64
        number = int(digits)
        if not low <= number <= high:
            kind = "int64" if raw[-1] == "i" else "uint64"
            raise ValueError(f"{raw!r} is out of {kind} range")
        return float(number)
    if not NUMBER.match(raw):
        raise ValueError(f"{raw!r} is not a value")
    return finite(float(raw), raw)


def parse_line_protocol(line: str) -> LinePoint:
    parts = [p for p in _split(line.strip(), " ") if p != ""]
    if len(parts) not in (2, 3):
        raise ValueError("expected 'measurement[,tags] fields [timestamp]'")
    head = _split(parts[0], ",")
    measurement = _unescape(head[0])
    if not measurement:
        raise ValueError("empty measurement")
    tags = {}
    for tag in head[1:]:
        key, sep, tag_value = tag.partition("=")
        if not sep or not key or not tag_value:
            raise ValueError(f"bad tag {tag!r}")
        tags[_unescape(key)] = _unescape(tag_value)
    fields: dict[str, float] = {}
    for item in _split(parts[1], ","):
        pieces = _split(item, "=", limit=1)
        if len(pieces) != 2 or not pieces[0] or not pieces[1]:
            raise ValueError(f"bad field {item!r}")
        key, raw = pieces
        try:
            value = _field_value(raw)
        except ValueError as err:
            raise ValueError(f"field {_unescape(key)!r}: {err}") from None
        if value is not None:
            fields[_unescape(key)] = value
    timestamp = None
    if len(parts) == 3:
        if not re.fullmatch(r"-?\d{1,19}", parts[2]) or not (INT64[0] <= int(parts[2]) <= INT64[1]):
            raise ValueError(f"timestamp {parts[2]!r} is not an int64 of nanoseconds")
        timestamp = int(parts[2]) / 1e9
    return LinePoint(measurement, tags, fields, timestamp)


@dataclass(frozen=True, slots=True)
class StatsdPoint:
    name: str
    value: float
    kind: str  # c, g, ms, h, d
    sample_rate: float
    tags: dict[str, str]
    delta: bool  # a gauge written as +N / -N


STATSD_TYPES = {"c", "g", "ms", "h", "d"}


def parse_statsd(line: str) -> StatsdPoint:
    name, sep, rest = line.strip().partition(":")
    if not sep or not name:
        raise ValueError("expected 'name:value|type'")
    fields = rest.split("|")
    if len(fields) < 2:
        raise ValueError("missing '|type'")
    raw, kind = fields[0], fields[1]
    if kind not in STATSD_TYPES:
        raise ValueError(f"unsupported type {kind!r}")
    try:
        value = finite(float(raw), raw)
    except ValueError:
        raise ValueError(f"value {raw!r} is not a number, or not finite") from None
    rate, tags = 1.0, {}
    for extra in fields[2:]:
        if extra.startswith("@"):
            rate = float(extra[1:])
            if not 0 < rate <= 1:  # NaN fails this too
                raise ValueError(f"sample rate {extra[1:]} is not in (0, 1]")
        elif extra.startswith("#"):
            for tag in extra[1:].split(","):
                key, _, tag_value = tag.partition(":")
                if key:
                    tags[key] = tag_value
    return StatsdPoint(name, value, kind, rate, tags, kind == "g" and raw[:1] in "+-")


def looks_like_statsd(line: str) -> bool:
    head = line.split(" ", 1)[0]
    return "|" in head and ":" in head.split("|", 1)[0]
