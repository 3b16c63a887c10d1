"""Container resource usage read straight from cgroupfs (v1 and v2), never from the stats API.

Reading a handful of small files per container costs microseconds; Docker's stats API
costs tens of milliseconds per container (docs/architecture.md, "Facts measured"). Paths
are found once per container from `/proc/PID/cgroup`, which is right for either cgroup
driver. The parts: `fdcache` (files kept open), `procfs` (what /proc tells beside the
cgroups), `stats` (the numbers and their parsers), `cgroup_v1` and `cgroup_v2` (the two
readers, one protocol: `CgroupReader`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .cgroup_v1 import CgroupV1
from .cgroup_v2 import V2_FILES, CgroupV2
from .fdcache import DESCRIPTOR_SHARE, LIMITS_TTL, MAX_READ, CgroupFiles, DescriptorBudget
from .procfs import (
    TASK_STATES,
    NetStats,
    block_device_names,
    net_dev_path,
    parse_net_dev,
    read_net_dev,
    read_proc_cgroup,
    task_states,
)
from .stats import UNLIMITED, CgroupStats


class CgroupReader(Protocol):
    """What the containers input asks of either cgroup version."""

    version: int

    def locate(self, container_id: str, pid: int) -> CgroupFiles:
        """The container's files, resolved once."""
        ...

    def root_files(self) -> CgroupFiles:
        """The host's root cgroup (cAdvisor's id="/")."""
        ...

    def read(self, files: CgroupFiles) -> CgroupStats: ...

    def files(self, files: CgroupFiles) -> list[str]:
        """The files one steady-state `read` opens (limits are cached)."""
        ...


def detect(
    root: Path = Path("/sys/fs/cgroup"),
    proc_root: Path = Path("/proc"),
    budget: DescriptorBudget | None = None,
) -> CgroupReader:
    """v2 when the root is the unified hierarchy itself; v1 (or hybrid) otherwise."""
    if (root / "cgroup.controllers").exists():
        return CgroupV2(root, proc_root, budget)
    return CgroupV1(root, proc_root, budget)


__all__ = [
    "DESCRIPTOR_SHARE",
    "LIMITS_TTL",
    "MAX_READ",
    "TASK_STATES",
    "UNLIMITED",
    "V2_FILES",
    "CgroupFiles",
    "CgroupReader",
    "CgroupStats",
    "CgroupV1",
    "CgroupV2",
    "DescriptorBudget",
    "NetStats",
    "block_device_names",
    "detect",
    "net_dev_path",
    "parse_net_dev",
    "read_net_dev",
    "read_proc_cgroup",
    "task_states",
]
