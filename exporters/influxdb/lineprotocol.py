"""Samples → InfluxDB line protocol: `name,label=value,... value=1.5 1700000000000000000`.

The measurement is the metric name and the field is `value`, so InfluxQL reads
`SELECT value FROM container_cpu_usage_seconds_total` and VictoriaMetrics names the
series `container_cpu_usage_seconds_total_value`. NaN and infinities, which line protocol
cannot carry, are left out.
"""

from __future__ import annotations

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


def serialize(samples: Iterable[Sample]) -> str:
    cache: dict[Labels, str] = {}  # a batch repeats the same label sets many times
    lines = []
    for s in samples:
        if not math.isfinite(s.value):
            continue
        lines.append(
            f"{s.name.translate(_MEASUREMENT)}{_tags(s.labels, cache)} "
            f"value={s.value!r} {round(s.timestamp * 1e6) * 1000}"
        )
    return "\n".join(lines)
