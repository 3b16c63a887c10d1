"""Options of the node input."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from ebbflow.config import FrozenModel

PSEUDO_FILESYSTEMS = ("tmpfs", "devtmpfs", "overlay", "squashfs", "nsfs", "proc", "sysfs")


class NodeConfig(FrozenModel):
    name: str | None = Field(None, description="The `node` label; default: the host name.")
    interval: float | None = Field(None, gt=0, description="Seconds; default: the app interval.")
    timeout: float = Field(5.0, gt=0)
    ignored_fstypes: tuple[str, ...] = PSEUDO_FILESYSTEMS
    ignored_devices: tuple[str, ...] = Field(
        (), description="Network devices left out of node_network_*_total (node_exporter: none)."
    )
    collectors: tuple[str, ...] = Field(
        (
            "stat", "vmstat", "netstat", "sockstat", "netclass", "netdev", "diskstats",
            "uname", "os", "time", "selinux", "entropy", "filefd", "timex", "pressure",
            "softnet", "udp_queues", "arp", "conntrack",
        ),
        description="node_exporter collectors to run (meminfo, loadavg and filesystem always).",
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
