"""Nagios plugin output: the exit code's state and the perfdata after `|`.

Perfdata items are `'label'=value[UOM];[warn];[crit];[min];[max]`, space separated, with
labels quoted when they hold spaces (Nagios plugin development guidelines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATES = {0: "ok", 1: "warning", 2: "critical", 3: "unknown"}
ITEM = re.compile(r"""('(?:[^']|'')+'|[^=\s]+)=(\S+)""")
VALUE = re.compile(r"^(-?[\d.]+(?:[eE][-+]?\d+)?)([a-zA-Z%]*)$")
NUMBER = re.compile(r"^-?[\d.]+(?:[eE][-+]?\d+)?$")


@dataclass(frozen=True, slots=True)
class PerfValue:
    label: str
    value: float
    unit: str
    warning: float | None = None
    critical: float | None = None
    minimum: float | None = None
    maximum: float | None = None


def _threshold(text: str) -> float | None:
    """A plain number; ranges (`10:20`, `@~:5`) are not one number and are left out."""
    return float(text) if NUMBER.match(text) else None


def parse_perfdata(text: str) -> tuple[list[PerfValue], list[str]]:
    """The items it understood, and a message for each it did not."""
    values, problems = [], []
    for match in ITEM.finditer(text):
        label = match.group(1).strip("'").replace("''", "'")
        fields = match.group(2).split(";")
        parsed = VALUE.match(fields[0])
        if parsed is None:
            problems.append(f"{label}: value {fields[0]!r} is not a number")
            continue
        extra = [_threshold(f) if f else None for f in fields[1:5]] + [None] * 4
        values.append(PerfValue(label, float(parsed.group(1)), parsed.group(2), *extra[:4]))
    return values, problems


def split_output(stdout: str) -> tuple[str, str]:
    """(first line of text, all perfdata) — perfdata may follow `|` on any line."""
    text_parts, perf_parts = [], []
    for line in stdout.splitlines():
        text, sep, perf = line.partition("|")
        text_parts.append(text.strip())
        if sep:
            perf_parts.append(perf.strip())
    return (text_parts[0] if text_parts else ""), " ".join(perf_parts)
