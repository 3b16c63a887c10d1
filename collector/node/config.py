"""Options of the node input."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from ebbflow.config import FrozenModel

from .filesystem import FS_TYPES_EXCLUDE, MOUNT_POINTS_EXCLUDE


class NodeConfig(FrozenModel):
    name: str | None = Field(
        None,
        description="A `node` label on every node series, with this value. Default: none, as "
        "node_exporter; an agent (`--role agent`) labels them with the host name, since its "
        "decider re-exports several nodes' series side by side.",
    )
    interval: float | None = Field(None, gt=0, description="Seconds; default: the app interval.")
    timeout: float = Field(5.0, gt=0)
    mount_points_exclude: str = Field(
        MOUNT_POINTS_EXCLUDE,
        description="Mount points the filesystem collector leaves out (a regular expression; "
        "node_exporter 1.5's default).",
    )
    fs_types_exclude: str = Field(
        FS_TYPES_EXCLUDE,
        description="Filesystem types left out (a regular expression; node_exporter 1.5's).",
    )
    ignored_devices: tuple[str, ...] = Field(
        (),
        description="Network devices left out of node_network_*_total (node_exporter: none; "
        "loopback is never there, as with node_exporter 1.5).",
    )
    collectors: tuple[str, ...] = Field(
        (
            "stat", "vmstat", "netstat", "sockstat", "netclass", "netdev", "diskstats",
            "uname", "os", "time", "selinux", "entropy", "filefd", "timex", "pressure",
            "softnet", "udp_queues", "arp", "conntrack",
        ),
        description="node_exporter collectors to run (cpu, meminfo, loadavg and filesystem "
        "always).",
    )  # fmt: skip
    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    etc_root: Path = Path("/etc")
    run_root: Path = Path("/run")

    @field_validator("collectors")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from .collectors import COLLECTORS

        unknown = sorted(set(names) - set(COLLECTORS))
        if unknown:
            raise ValueError(f"unknown {unknown}; known: {sorted(COLLECTORS)}")
        return names

    @field_validator("mount_points_exclude", "fs_types_exclude")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"not a regular expression: {err}") from None
        return pattern
