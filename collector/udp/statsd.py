"""StatsD (statsd's metric_types.md) and DogStatsD (datagram format v1.3), one line → one
parsed item, or ValueError with what was wrong.

    name:value[:value...]|type[|@rate][|#tag:value,tag][|T<unix seconds>][|c:<container id>]
    _sc|name|status[|d:timestamp][|h:host][|#tags][|m:message]
    _e{title length,text length}:title|text[|d:timestamp][|h:host][|p:priority]
        [|t:alert type][|#tags]

Types: c (counter), g (gauge; `+N`/`-N` a delta), ms and h (timers, histograms), d
(distribution), s (set: the value is a member, not a number). Several values in one line
(`1:2:3|d`) are several samples. Fields a later version of the format adds (one letter and
a colon, or a capital letter) are skipped, as DogStatsD asks of a reader.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

TYPES = frozenset({"c", "g", "ms", "h", "d", "s"})
NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\Z")
STATSD_LINE = re.compile(r"[^\s:|]+:[^|\s]*\|(?:c|g|ms|h|d|s)(?:\||\Z)")
EVENT_HEAD = re.compile(r"_e\{(\d+),(\d+)\}:")
EXTENSION = re.compile(r"(?:[a-z]+:|[A-Z])")


@dataclass(frozen=True, slots=True)
class StatsdPoint:
    name: str
    values: tuple[float, ...]  # numbers; for a set, empty (see `members`)
    kind: str  # c, g, ms, h, d, s
    sample_rate: float = 1.0
    tags: dict[str, str] = field(default_factory=dict)
    delta: bool = False  # a gauge written as +N / -N
    members: tuple[str, ...] = ()  # a set's members
    timestamp: float | None = None  # DogStatsD `|T`: the client's time, Unix seconds
    container_id: str = ""


@dataclass(frozen=True, slots=True)
class ServiceCheck:
    name: str
    status: int  # 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
    tags: dict[str, str] = field(default_factory=dict)
    hostname: str = ""
    message: str = ""
    timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class StatsdEvent:
    title: str
    text: str
    alert_type: str = "info"  # error, warning, info, success
    priority: str = "normal"  # normal, low
    tags: dict[str, str] = field(default_factory=dict)
    hostname: str = ""
    timestamp: float | None = None


StatsdItem = StatsdPoint | ServiceCheck | StatsdEvent


def looks_like_statsd(line: str) -> bool:
    """`name:value|type` with a type StatsD has, or a DogStatsD event or service check;
    a line-protocol tag such as `url=http://x/a|b` is not."""
    return line.startswith(("_sc|", "_e{")) or STATSD_LINE.match(line) is not None


def parse_tags(text: str) -> dict[str, str]:
    """`k:v,flag`: a tag without a value (`flag`) is the label `flag="true"`, so it never
    merges with the series that lacks it."""
    tags: dict[str, str] = {}
    for tag in text.split(","):
        if not tag:
            continue
        key, sep, value = tag.partition(":")
        if not key:
            raise ValueError(f"tag {tag!r} has no name")
        tags[key] = value if sep else "true"
    return tags


def _number(raw: str, what: str) -> float:
    if NUMBER.match(raw) is None:
        raise ValueError(f"{what} {raw!r} is not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"{what} {raw!r} is not finite")
    return value


def _timestamp(raw: str) -> float:
    if not raw.isdigit():
        raise ValueError(f"timestamp {raw!r} is not Unix seconds")
    return float(raw)


def parse_statsd(line: str) -> StatsdItem:
    line = line.strip()
    if line.startswith("_sc|"):
        return _service_check(line)
    if line.startswith("_e{"):
        return _event(line)
    name, sep, rest = line.partition(":")
    if not sep or not name:
        raise ValueError("expected 'name:value|type'")
    parts = rest.split("|")
    if len(parts) < 2:
        raise ValueError("missing '|type'")
    raw_values, kind = parts[0], parts[1]
    if kind not in TYPES:
        raise ValueError(f"unsupported type {kind!r}")
    rate, tags, timestamp, container = 1.0, {}, None, ""
    for extra in parts[2:]:
        if extra.startswith("@"):
            rate = _number(extra[1:], "sample rate")
            if not 0 < rate <= 1:
                raise ValueError(f"sample rate {extra[1:]} is not in (0, 1]")
        elif extra.startswith("#"):
            tags = parse_tags(extra[1:])
        elif extra.startswith("T"):
            timestamp = _timestamp(extra[1:])
        elif extra.startswith("c:"):
            container = extra[2:]
        elif not EXTENSION.match(extra):
            raise ValueError(f"unknown field {extra!r}")
    if kind == "s":
        if not raw_values:
            raise ValueError("a set needs a member")
        members = tuple(raw_values.split(":"))
        return StatsdPoint(name, (), kind, rate, tags, False, members, timestamp, container)
    texts = raw_values.split(":")
    values = tuple(_number(text, "value") for text in texts)
    delta = kind == "g" and texts[0][:1] in "+-"
    return StatsdPoint(name, values, kind, rate, tags, delta, (), timestamp, container)


def _service_check(line: str) -> ServiceCheck:
    parts = line.split("|")
    if len(parts) < 3 or not parts[1]:
        raise ValueError("expected '_sc|name|status'")
    if parts[2] not in ("0", "1", "2", "3"):
        raise ValueError(f"service check status {parts[2]!r} is not 0, 1, 2 or 3")
    tags, hostname, message, timestamp = {}, "", "", None
    for index, extra in enumerate(parts[3:], start=3):
        if extra.startswith("m:"):  # the message comes last and may hold `|`
            message = "|".join(parts[index:])[2:]
            break
        if extra.startswith("#"):
            tags = parse_tags(extra[1:])
        elif extra.startswith("h:"):
            hostname = extra[2:]
        elif extra.startswith("d:"):
            timestamp = _timestamp(extra[2:])
        elif not EXTENSION.match(extra):
            raise ValueError(f"unknown service check field {extra!r}")
    return ServiceCheck(parts[1], int(parts[2]), tags, hostname, message, timestamp)


def _event(line: str) -> StatsdEvent:
    head = EVENT_HEAD.match(line)
    if head is None:
        raise ValueError("expected '_e{title length,text length}:title|text'")
    body = line[head.end() :].encode()
    title_length, text_length = int(head.group(1)), int(head.group(2))
    if len(body) < title_length + 1 + text_length or body[title_length : title_length + 1] != b"|":
        raise ValueError("the event's title and text are not the lengths its header gives")
    title = body[:title_length].decode(errors="replace")
    text = body[title_length + 1 : title_length + 1 + text_length].decode(errors="replace")
    rest = body[title_length + 1 + text_length :].decode(errors="replace")
    fields: dict[str, str] = {}
    tags: dict[str, str] = {}
    timestamp = None
    for extra in rest.split("|")[1:]:
        if extra.startswith("#"):
            tags = parse_tags(extra[1:])
        elif extra.startswith("d:"):
            timestamp = _timestamp(extra[2:])
        elif len(extra) > 1 and extra[1] == ":":
            fields[extra[0]] = extra[2:]
        else:
            raise ValueError(f"unknown event field {extra!r}")
    return StatsdEvent(
        title,
        text.replace("\\n", "\n"),
        fields.get("t", "info"),
        fields.get("p", "normal"),
        tags,
        fields.get("h", ""),
        timestamp,
    )
