"""Samples → the wire formats push outputs send: InfluxDB line protocol and JSON lines.

Line protocol: the measurement is the metric name and the field is `value`, so InfluxQL
reads `SELECT value FROM container_cpu_usage_seconds_total` and VictoriaMetrics names the
series `container_cpu_usage_seconds_total_value`.

JSON lines: one object per sample in Telegraf's JSON shape (`name`, `tags`,
`fields.value`, `timestamp` in seconds) plus `type` (counter or gauge), so consumers
written for Telegraf read it as is.

NaN and infinities, which neither format can carry, are left out. Both formats cache the
text of a label set: a batch repeats the same few label sets many times.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from ebbflow.model import Labels, Sample

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_TAG = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})


def _tags(labels: Labels, cache: dict[Labels, str]) -> str:
    text = cache.get(labels)
    if text is None:
        text = "".join(f",{k.translate(_TAG)}={v.translate(_TAG)}" for k, v in labels if v)
        cache[labels] = text
    return text


def line_protocol(samples: Iterable[Sample]) -> str:
    cache: dict[Labels, str] = {}
    lines = []
    for s in samples:
        if not math.isfinite(s.value):
            continue
        lines.append(
            f"{s.name.translate(_MEASUREMENT)}{_tags(s.labels, cache)} "
            f"value={s.value!r} {round(s.timestamp * 1e6) * 1000}"
        )
    return "\n".join(lines)


def json_lines(samples: Iterable[Sample]) -> str:
    names: dict[str, str] = {}
    tags: dict[Labels, str] = {}
    lines = []
    for s in samples:
        if not math.isfinite(s.value):
            continue
        name = names.get(s.name)
        if name is None:
            name = names[s.name] = json.dumps(s.name)
        tag_text = tags.get(s.labels)
        if tag_text is None:
            tag_text = tags[s.labels] = json.dumps({k: v for k, v in s.labels if v})
        lines.append(
            f'{{"name":{name},"tags":{tag_text},"fields":{{"value":{s.value!r}}},'
            f'"timestamp":{round(s.timestamp, 6)!r},"type":"{s.kind}"}}'
        )
    return "\n".join(lines)


FORMATS = {"influx": line_protocol, "json": json_lines}
