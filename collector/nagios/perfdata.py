"""Nagios plugin output, per the plugin development guidelines: the exit code's state, the
text, and the perfdata after `|` on the first line and after the first `|` of the long text
(every line from there on is perfdata).

Perfdata items are `'label'=value[UOM];[warn];[crit];[min];[max]`, space separated, with
labels quoted when they hold spaces; warn and crit are threshold ranges.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

STATES = {0: "ok", 1: "warning", 2: "critical", 3: "unknown"}
ITEM = re.compile(r"""('(?:[^']|'')+'|[^=\s]+)=(\S+)""")
VALUE = re.compile(r"^([-+]?[\d.]+(?:[eE][-+]?\d+)?)([a-zA-Z%]*)$")
NUMBER = re.compile(r"^[-+]?[\d.]+(?:[eE][-+]?\d+)?$")


@dataclass(frozen=True, slots=True)
class Range:
    """A threshold range: the state is raised for a value outside [low, high] or, for an
    `@` range, inside it. `10` is [0, 10], `10:` is [10, ∞], `~:10` is [-∞, 10]."""

    low: float
    high: float
    inside: bool = False


@dataclass(frozen=True, slots=True)
class PerfValue:
    label: str
    value: float
    unit: str
    warning: Range | None = None
    critical: Range | None = None
    minimum: float | None = None
    maximum: float | None = None


def parse_range(text: str) -> Range:
    inside = text.startswith("@")
    body = text[1:] if inside else text
    if not body:
        raise ValueError(f"threshold {text!r}: empty")
    start, sep, end = body.partition(":")
    if not sep:
        start, end = "0", body
    if start == "~":
        low = -math.inf
    elif NUMBER.match(start or "0"):
        low = float(start or 0)
    else:
        raise ValueError(f"threshold {text!r}: {start!r} is not a number or ~")
    if end and not NUMBER.match(end):
        raise ValueError(f"threshold {text!r}: {end!r} is not a number")
    high = float(end) if end else math.inf
    if low > high:
        raise ValueError(f"threshold {text!r}: its start is above its end")
    return Range(low, high, inside)


def _number(field: str, what: str) -> float | None:
    if not field:
        return None
    if not NUMBER.match(field):
        raise ValueError(f"{what} {field!r} is not a number")
    return float(field)


def parse_perfdata(text: str) -> tuple[list[PerfValue], list[str]]:
    """The items it understood, and a message for each it did not (a label given twice
    keeps its first value)."""
    values: list[PerfValue] = []
    problems: list[str] = []
    seen: set[str] = set()
    for match in ITEM.finditer(text):
        label = match.group(1)
        if label.startswith("'"):
            label = label[1:-1].replace("''", "'")
        fields = (match.group(2).split(";") + [""] * 5)[:5]
        parsed = VALUE.match(fields[0])
        if parsed is None:
            problems.append(f"{label}: value {fields[0]!r} is not a number")
            continue
        if label in seen:
            problems.append(f"{label}: given twice; the first value is kept")
            continue
        try:
            warning = parse_range(fields[1]) if fields[1] else None
            critical = parse_range(fields[2]) if fields[2] else None
            minimum, maximum = _number(fields[3], "min"), _number(fields[4], "max")
        except ValueError as err:
            problems.append(f"{label}: {err}")
            continue
        seen.add(label)
        values.append(
            PerfValue(
                label, float(parsed.group(1)), parsed.group(2), warning, critical, minimum, maximum
            )
        )
    return values, problems


def split_output(stdout: str) -> tuple[str, str]:
    """(first line of text, all perfdata)."""
    lines = stdout.split("\n")
    text, _, first_perf = lines[0].partition("|")
    perf = [first_perf.strip()]
    in_perf = False
    for line in lines[1:]:
        if in_perf:
            perf.append(line.strip())
            continue
        _, sep, rest = line.partition("|")
        if sep:
            in_perf = True
            perf.append(rest.strip())
    return text.strip(), " ".join(p for p in perf if p)
