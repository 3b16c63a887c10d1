"""Every `/proc/meminfo` field, as node_exporter's meminfo collector names it.

Read from the file, not psutil's derived fields: psutil's `cached` adds SReclaimable, which
node_exporter's `node_memory_Cached_bytes` does not.
"""

from __future__ import annotations

import re
from pathlib import Path

from .source import Paths, Row

MEMINFO = Path("/proc/meminfo")
PARENTHESES = re.compile(r"\((.*)\)")


def parse_meminfo(text: str) -> list[tuple[str, float, str]]:
    """(metric name, value, HELP) per field: `Active(anon):  12 kB` →
    `node_memory_Active_anon_bytes` 12288; a field without a unit keeps its name."""
    fields = []
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not key or not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue  # not a number: node_exporter skips it too
        name = PARENTHESES.sub(r"_\1", key.strip())
        if len(parts) > 1 and parts[1] == "kB":
            value *= 1024
            name += "_bytes"
        fields.append((f"node_memory_{name}", value, f"Memory information field {name}."))
    return fields


def read_meminfo(path: Path = MEMINFO) -> list[tuple[str, float, str]]:
    return parse_meminfo(path.read_text())


def collect(paths: Paths) -> list[Row]:
    """node_exporter's meminfo collector."""
    return [
        Row(name, value, "gauge", help_text)
        for name, value, help_text in read_meminfo(paths.proc / "meminfo")
    ]
