"""Samples → the wire formats push outputs send: InfluxDB line protocol and JSON lines.

Line protocol: the measurement is the metric name and the field is `value`, so InfluxQL
reads `SELECT value FROM container_cpu_usage_seconds_total` and VictoriaMetrics names the
series `container_cpu_usage_seconds_total_value`.

JSON lines: one object per sample in Telegraf's JSON shape (`name`, `tags`,
`fields.value`, `timestamp` in seconds) plus `type` (counter or gauge), so consumers
written for Telegraf read it as is.

NaN and infinities, which neither format can carry, are left out. Both formats format a
label set once per call: a batch repeats the same few label sets many times.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable

from ebbflow.model import Labels, Sample

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_TAG = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})


class LabelTextCache:
    """Text per label set for one serialization call, keyed by the tuple's identity: an
    input builds one label tuple per container and reuses it for all its samples, and
    hashing the tuple's contents for every sample would cost more than the lookup saves.
    The tuple itself is kept with its text, so a reused id can never match."""

    def __init__(self, render: Callable[[Labels], str]) -> None:
        self.render = render
        self.texts: dict[int, tuple[Labels, str]] = {}

    def __call__(self, labels: Labels) -> str:
        hit = self.texts.get(id(labels))
        if hit is None or hit[0] is not labels:
            hit = self.texts[id(labels)] = (labels, self.render(labels))
        return hit[1]


def _tags(labels: Labels) -> str:
    return "".join(f",{k.translate(_TAG)}={v.translate(_TAG)}" for k, v in labels if v)


def _json_tags(labels: Labels) -> str:
    return json.dumps({k: v for k, v in labels if v})


def line_protocol(samples: Iterable[Sample]) -> str:
    names: dict[str, str] = {}
    stamps: dict[float, str] = {}
    tags = LabelTextCache(_tags)
    lines = []
    for s in samples:
        value = s.value
        if not math.isfinite(value):
            continue
        name = names.get(s.name)
        if name is None:
            name = names[s.name] = s.name.translate(_MEASUREMENT)
        stamp = stamps.get(s.timestamp)
        if stamp is None:
            stamp = stamps[s.timestamp] = str(round(s.timestamp * 1e6) * 1000)
        lines.append(f"{name}{tags(s.labels)} value={value!r} {stamp}")
    return "\n".join(lines)


def json_lines(samples: Iterable[Sample]) -> str:
    names: dict[str, str] = {}
    stamps: dict[float, str] = {}
    tags = LabelTextCache(_json_tags)
    lines = []
    for s in samples:
        value = s.value
        if not math.isfinite(value):
            continue
        name = names.get(s.name)
        if name is None:
            name = names[s.name] = json.dumps(s.name)
        stamp = stamps.get(s.timestamp)
        if stamp is None:
            stamp = stamps[s.timestamp] = repr(round(s.timestamp, 6))
        lines.append(
            f'{{"name":{name},"tags":{tags(s.labels)},"fields":{{"value":{value!r}}},'
            f'"timestamp":{stamp},"type":"{s.kind}"}}'
        )
    return "\n".join(lines)


FORMATS = {"influx": line_protocol, "json": json_lines}
