"""node_exporter's vmstat collector: /proc/vmstat, its default fields."""

from __future__ import annotations

import re

from .source import Paths, Row

FIELDS = re.compile(r"^(oom_kill|pgpg|pswp|pg.*fault).*")  # --collector.vmstat.fields


def collect(paths: Paths) -> list[Row]:
    rows = []
    for line in (paths.proc / "vmstat").read_text().splitlines():
        key, _, value = line.partition(" ")
        if FIELDS.match(key):
            help_text = f"/proc/vmstat information field {key}."
            rows.append(Row(f"node_vmstat_{key}", float(value), "untyped", help_text))
    return rows
