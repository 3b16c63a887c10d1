"""Pushed names → Prometheus names, and the one rule that keeps two of them apart.

A line-protocol field becomes `<measurement>_<field>` (Telegraf's prometheus_client
naming, which dashboards know), a StatsD name itself; characters Prometheus does not allow
become `_`. That mapping is not one-to-one (`cpu,usage_idle` and `cpu_usage,idle`, or
`req-ms` and `req_ms`, meet on one name), so the first source of a name owns it and a
later, different source is refused by name and counted, never merged into its series.
"""

from __future__ import annotations

import re

INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]")
INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(text: str) -> str:
    name = INVALID_NAME.sub("_", text)
    return "_" + name if name[:1].isdigit() else name


def label_name(text: str) -> str:
    name = INVALID_LABEL.sub("_", text)
    return "_" + name if name[:1].isdigit() else name


class NameOwners:
    """Which source (a measurement and field, or a StatsD name) each exported name came
    from; bounded, and forgotten with the series of that name."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.owners: dict[str, str] = {}
        self.collisions = 0

    def claim(self, name: str, source: str) -> str | None:
        """None when `source` may use `name`; else the source that owns it."""
        owner = self.owners.get(name)
        if owner is None:
            if len(self.owners) < self.limit:
                self.owners[name] = source
            return None
        if owner == source:
            return None
        self.collisions += 1
        return owner

    def keep_only(self, names: set[str]) -> None:
        self.owners = {n: s for n, s in self.owners.items() if n in names}
