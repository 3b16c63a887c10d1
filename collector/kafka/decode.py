"""A Kafka message from an ebbflow agent (its Kafka output) back into samples: InfluxDB line
protocol (the measurement is the metric, the field `value`) or Telegraf-style JSON lines.
Each sample's timestamp is the agent's, so a late message is judged as late. A line that
does not parse costs that line alone, counted; the message's other lines are kept."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Literal

from ebbflow.model import MetricKind, Sample

from ..udp.lineprotocol import LineProtocolError, parse_lines


@dataclass(slots=True)
class Decoded:
    samples: list[Sample] = field(default_factory=list)
    bad_lines: int = 0
    first_error: str = ""  # the first bad line's error, for the log
    truncated: int = 0  # samples past max_samples, dropped


def _bad(out: Decoded, why: str) -> None:
    out.bad_lines += 1
    if not out.first_error:
        out.first_error = why


def decode(
    value: bytes, fmt: Literal["auto", "influx", "json"], max_samples: int, now: float
) -> Decoded:
    out = Decoded()
    try:
        text = value.decode()
    except UnicodeDecodeError as err:
        _bad(out, f"not UTF-8 at byte {err.start}")
        return out
    if fmt == "json" or (fmt == "auto" and text.lstrip()[:1] == "{"):
        _json(text, max_samples, out)
    else:
        _influx(text, max_samples, now, out)
    return out


def _keep(out: Decoded, sample: Sample, max_samples: int) -> None:
    if len(out.samples) >= max_samples:
        out.truncated += 1
    else:
        out.samples.append(sample)


def _influx(text: str, max_samples: int, now: float, out: Decoded) -> None:
    for point in parse_lines(text):
        if isinstance(point, LineProtocolError):
            _bad(out, str(point))
            continue
        value = point.fields.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            _bad(out, f"{point.measurement}: no numeric `value` field")
            continue
        labels = tuple(sorted((k, v) for k, v in point.tags.items() if v))
        stamp = point.timestamp if point.timestamp is not None else now
        _keep(out, Sample(point.measurement, float(value), labels, stamp, "untyped"), max_samples)


def _json(text: str, max_samples: int, out: Decoded) -> None:
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name, tags = row["name"], row.get("tags") or {}
            value, stamp = row["fields"]["value"], row["timestamp"]
            kind = row.get("type", "untyped")
            if not isinstance(name, str) or not name or not isinstance(tags, dict):
                raise TypeError("name must be a string, tags an object")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError("fields.value must be a number")
            if not isinstance(stamp, int | float) or not math.isfinite(stamp):
                raise TypeError("timestamp must be a number")
            labels = tuple(sorted((str(k), str(v)) for k, v in tags.items() if v))
        except (ValueError, KeyError, TypeError) as err:
            _bad(out, f"line {number}: {type(err).__name__}: {err}"[:200])
            continue
        sample_type: MetricKind = (
            "counter" if kind == "counter" else ("gauge" if kind == "gauge" else "untyped")
        )
        _keep(out, Sample(name, float(value), labels, float(stamp), sample_type), max_samples)
