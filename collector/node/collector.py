"""The node input: one psutil pass per cycle, in a worker thread."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import psutil

from ebbflow.bus import Bus
from ebbflow.model import MetricKind, Sample, labels_of

from ..base import PollingInput
from .config import NodeConfig
from .meminfo import read_meminfo
from .metrics import DISK, FILESYSTEM, FILESYSTEM_COUNTS, NETWORK

DEVICE_ERROR = "node_filesystem_device_error"
DEVICE_ERROR_HELP = "Whether an error occurred while getting statistics for the given device."


def filesystem_fields(st: os.statvfs_result) -> list[tuple[str, float, str]]:
    """node_exporter's values: sizes in f_bsize units, read-only from the mount flags."""
    fields = [(name, getattr(st, f) * st.f_bsize, h) for f, (name, h) in FILESYSTEM.items()]
    fields += [(name, getattr(st, f), h) for f, (name, h) in FILESYSTEM_COUNTS.items()]
    readonly = 1.0 if st.f_flag & os.ST_RDONLY else 0.0
    fields.append(("node_filesystem_readonly", readonly, "Filesystem read-only status."))
    return fields


class NodeInput(PollingInput):
    name = "node"

    def __init__(
        self, bus: Bus, config: NodeConfig, interval: float, clock: Callable[[], float]
    ) -> None:
        super().__init__(bus, interval, config.timeout, clock)
        self.config = config
        self.node = config.name or socket.gethostname()
        self._last_cpu: tuple[float, float] | None = None  # (busy, total) seconds

    def _sample(
        self,
        out: list[Sample],
        name: str,
        value: float,
        now: float,
        kind: MetricKind = "gauge",
        help_text: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        pairs = labels_of({"node": self.node, **(labels or {})})
        out.append(Sample(name, float(value), pairs, now, kind, help_text))

    def read(self) -> list[Sample]:
        now = self.clock()
        out: list[Sample] = []
        self._cpu(out, now)
        for minutes, value in zip((1, 5, 15), os.getloadavg(), strict=True):
            self._sample(
                out, f"node_load{minutes}", value, now, help_text=f"{minutes}m load average."
            )
        for name, value, help_text in read_meminfo():
            self._sample(out, name, value, now, help_text=help_text)
        memory = psutil.virtual_memory()
        self._sample(
            out,
            "ebbflow_node_memory_percent",
            100.0 * (memory.total - memory.available) / memory.total,
            now,
            help_text="Memory in use (total less available), percent.",
        )
        self._filesystems(out, now)
        for device, disk in psutil.disk_io_counters(perdisk=True).items():
            for field, (name, help_text, scale) in DISK.items():
                self._sample(
                    out,
                    name,
                    getattr(disk, field) * scale,
                    now,
                    "counter",
                    help_text,
                    labels={"device": device},
                )
        for device, nic in psutil.net_io_counters(pernic=True).items():
            if device in self.config.ignored_devices:
                continue
            for field, (name, help_text) in NETWORK.items():
                self._sample(
                    out,
                    name,
                    getattr(nic, field),
                    now,
                    "counter",
                    help_text,
                    labels={"device": device},
                )
        self._sample(
            out,
            "node_boot_time_seconds",
            psutil.boot_time(),
            now,
            help_text="Boot time, Unix seconds.",
        )
        return out

    def _cpu(self, out: list[Sample], now: float) -> None:
        busy_total = 0.0
        all_total = 0.0
        for cpu, times in enumerate(psutil.cpu_times(percpu=True)):
            for mode, seconds in times._asdict().items():
                if mode in ("guest", "guest_nice"):  # already counted in user/nice
                    continue
                self._sample(
                    out,
                    "node_cpu_seconds_total",
                    seconds,
                    now,
                    "counter",
                    "Seconds the CPUs spent in each mode.",
                    labels={"cpu": str(cpu), "mode": mode},
                )
                all_total += seconds
                if mode not in ("idle", "iowait"):
                    busy_total += seconds
        if self._last_cpu is not None and all_total > self._last_cpu[1]:
            busy = (busy_total - self._last_cpu[0]) / (all_total - self._last_cpu[1])
            self._sample(
                out,
                "ebbflow_node_cpu_percent",
                100.0 * busy,
                now,
                help_text="CPU busy over the last cycle, percent of all cores.",
            )
        self._last_cpu = (busy_total, all_total)

    def _filesystems(self, out: list[Sample], now: float) -> None:
        seen: set[str] = set()
        for part in psutil.disk_partitions(all=False):
            if part.fstype in self.config.ignored_fstypes or part.mountpoint in seen:
                continue
            seen.add(part.mountpoint)
            labels = {"device": part.device, "mountpoint": part.mountpoint, "fstype": part.fstype}
            try:
                st = os.statvfs(part.mountpoint)
            except OSError:
                self._sample(out, DEVICE_ERROR, 1, now, help_text=DEVICE_ERROR_HELP, labels=labels)
                continue
            self._sample(out, DEVICE_ERROR, 0, now, help_text=DEVICE_ERROR_HELP, labels=labels)
            for name, value, help_text in filesystem_fields(st):
                self._sample(out, name, value, now, help_text=help_text, labels=labels)

    async def fetch(self) -> list[Sample]:
        return await asyncio.to_thread(self.read)

    async def prepare(self) -> None:
        await asyncio.to_thread(self.read)  # the CPU baseline
