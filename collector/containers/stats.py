"""One container's numbers as both cgroup versions report them, and the small parsers the
two readers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .fdcache import CgroupFiles, DescriptorBudget
from .procfs import _read_int

UNLIMITED = 1 << 62  # v1 reports "no limit" as a page-rounded 2^63-1


@dataclass(frozen=True, slots=True)
class CgroupStats:
    cpu_seconds: float
    cpu_user_seconds: float | None
    cpu_system_seconds: float | None
    cpu_limit_cores: float | None
    memory_usage_bytes: int
    memory_working_set_bytes: int
    memory_rss_bytes: int | None
    memory_cache_bytes: int | None
    memory_limit_bytes: int | None
    io_read_bytes: int
    io_write_bytes: int
    # cAdvisor's further series; None where this cgroup version has no such file
    cfs_periods: int | None = None
    cfs_throttled_periods: int | None = None
    cfs_throttled_seconds: float | None = None
    memory_swap_bytes: int | None = None
    memory_mapped_file_bytes: int | None = None
    memory_max_usage_bytes: int | None = None
    memory_failcnt: int | None = None
    # (failure_type, scope) → count: pgfault/pgmajfault, container/hierarchy
    memory_failures: dict[tuple[str, str], int] = field(default_factory=dict)
    # "MAJ:MIN" → [read bytes, written bytes, reads, writes]
    io_devices: dict[str, list[int]] = field(default_factory=dict)
    spec: dict[str, float] = field(default_factory=dict)


def _flat_keyed(text: str) -> dict[str, str]:
    """`key value` lines (memory.stat, cpu.stat); values stay text until one is used.
    Split as words, paired (twice as fast as line by line); line by line only when a line
    is not two words."""
    words = text.split()
    if len(words) == 2 * text.count("\n") or len(words) == 2 * (text.count("\n") + 1):
        return dict(zip(words[::2], words[1::2], strict=True))
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def _int_of(stat: dict[str, str], *keys: str) -> int | None:
    """The first of `keys` that is present, as a number."""
    for key in keys:
        if key in stat:
            return int(stat[key])
    return None


def _seconds(usec: int | None) -> float | None:
    return None if usec is None else usec / 1e6


def _limit(value: int) -> int | None:
    return None if value <= 0 or value >= UNLIMITED else value


def _quota_cores(quota: int, period: int) -> float | None:
    return quota / period if quota > 0 and period > 0 else None


def _optional_int(path: str) -> int | None:
    try:
        return _read_int(path)
    except (OSError, ValueError):
        return None


def _spec_limit(value: int | None) -> float:
    """cAdvisor's spec value: 0 when unlimited."""
    return float(value) if value is not None and 0 < value < UNLIMITED else 0.0


def _throttling(cpu_stat: dict[str, str], time_key: str, per_second: float) -> dict[str, object]:
    periods = _int_of(cpu_stat, "nr_periods")
    throttled = _int_of(cpu_stat, "nr_throttled")
    time_value = _int_of(cpu_stat, time_key)
    return {
        "cfs_periods": periods,
        "cfs_throttled_periods": throttled,
        "cfs_throttled_seconds": None if time_value is None else time_value / per_second,
    }


class Hierarchy:
    """What both cgroup readers are made of: the hierarchy's root, /proc, and the budget
    of files they may keep open."""

    version: int

    def __init__(self, root: Path, proc_root: Path, budget: DescriptorBudget | None = None) -> None:
        self.root = root
        self.proc_root = proc_root
        self.budget = budget

    def files_at(self, paths: dict[str, str]) -> CgroupFiles:
        return CgroupFiles(paths, budget=self.budget)
