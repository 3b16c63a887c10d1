"""What every node collector shares: where the host's files are (so tests point them at a
fixture tree), and the row a collector yields for each value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ebbflow.model import MetricKind


class Row(NamedTuple):
    name: str
    value: float
    kind: MetricKind
    help: str
    labels: dict[str, str] = {}


@dataclass(frozen=True)
class Paths:
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    etc: Path = Path("/etc")
    run: Path = Path("/run")
    options: dict[str, object] = field(default_factory=dict)


def read(path: Path) -> str:
    return path.read_text()


def read_int(path: Path) -> int | None:
    """A sysfs number, or None when the file is absent or unreadable (an interface that is
    down answers EINVAL for some): node_exporter leaves such values out."""
    try:
        return int(path.read_text().strip(), 0)
    except (OSError, ValueError):
        return None


Collector = Callable[[Paths], list[Row]]
