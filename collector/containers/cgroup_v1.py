"""cgroup v1: a directory per controller (cpu, cpuacct, memory, blkio)."""

from __future__ import annotations

import os
from pathlib import Path

from .fdcache import CgroupFiles
from .procfs import _read_int, read_proc_cgroup
from .stats import (
    CgroupStats,
    Hierarchy,
    _flat_keyed,
    _int_of,
    _limit,
    _optional_int,
    _quota_cores,
    _spec_limit,
    _throttling,
)

WANTED = ("cpu", "cpuacct", "memory", "blkio")
HZ = os.sysconf("SC_CLK_TCK")  # cpuacct.stat's unit


class CgroupV1(Hierarchy):
    version = 1

    def _dirs(self, container_id: str, pid: int) -> dict[str, Path]:
        """Controller → the container's directory: from /proc/PID/cgroup, else the
        cgroupfs and systemd layouts are tried."""
        if pid > 0:
            try:
                found = read_proc_cgroup(self.proc_root, pid)
                return {c: self.root / c / found[c].lstrip("/") for c in WANTED if c in found}
            except (OSError, ValueError):
                pass
        for rel in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
            if (self.root / "memory" / rel).is_dir():
                return {c: self.root / c / rel for c in WANTED}
        raise FileNotFoundError(f"no cgroup found for container {container_id[:12]}")

    @staticmethod
    def _first(directory: Path | None, *names: str) -> str:
        """The first of the files that exists there ("" for none): the recursive blkio
        files where the kernel has them."""
        if directory is None:
            return ""
        return next((str(directory / n) for n in names if (directory / n).exists()), "")

    def locate(self, container_id: str, pid: int) -> CgroupFiles:
        """The container's files, resolved once."""
        dirs = self._dirs(container_id, pid)
        blkio = dirs.get("blkio")
        blkio_file = self._first(
            blkio, "blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"
        )
        serviced = self._first(
            blkio, "blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced"
        )
        cpu, memory = dirs["cpu"], dirs["memory"]
        return CgroupFiles(
            {
                "usage": str(dirs["cpuacct"] / "cpuacct.usage"),
                "stat": str(dirs["cpuacct"] / "cpuacct.stat"),
                "quota": str(cpu / "cpu.cfs_quota_us"),
                "period": str(cpu / "cpu.cfs_period_us"),
                "shares": str(cpu / "cpu.shares"),
                "cpu_stat": str(cpu / "cpu.stat"),
                "memory_stat": str(memory / "memory.stat"),
                "memory_usage": str(memory / "memory.usage_in_bytes"),
                "memory_limit": str(memory / "memory.limit_in_bytes"),
                "memory_max_usage": str(memory / "memory.max_usage_in_bytes"),
                "memory_failcnt": str(memory / "memory.failcnt"),
                "memory_soft_limit": str(memory / "memory.soft_limit_in_bytes"),
                "memory_swap_limit": str(memory / "memory.memsw.limit_in_bytes"),
                "blkio": blkio_file,
                "serviced": serviced,
                "tasks": str(cpu / "tasks"),
            },
            budget=self.budget,
        )

    def root_files(self) -> CgroupFiles:
        """The host's root cgroup (cAdvisor's id="/")."""
        paths = {
            "usage": "cpuacct/cpuacct.usage", "stat": "cpuacct/cpuacct.stat",
            "quota": "cpu/cpu.cfs_quota_us", "period": "cpu/cpu.cfs_period_us",
            "shares": "cpu/cpu.shares", "cpu_stat": "cpu/cpu.stat",
            "memory_stat": "memory/memory.stat", "memory_usage": "memory/memory.usage_in_bytes",
            "memory_limit": "memory/memory.limit_in_bytes",
            "memory_max_usage": "memory/memory.max_usage_in_bytes",
            "memory_failcnt": "memory/memory.failcnt",
            "memory_soft_limit": "memory/memory.soft_limit_in_bytes",
            "memory_swap_limit": "memory/memory.memsw.limit_in_bytes",
            "blkio": "blkio/blkio.throttle.io_service_bytes",
            "serviced": "blkio/blkio.throttle.io_serviced",
        }  # fmt: skip
        return CgroupFiles({k: str(self.root / v) for k, v in paths.items()}, budget=self.budget)

    @staticmethod
    def files(files: CgroupFiles) -> list[str]:
        """The files one steady-state `read` opens (limits are cached)."""
        return [
            files.paths[k]
            for k in (
                "usage", "stat", "cpu_stat", "memory_stat", "memory_usage", "memory_max_usage",
                "memory_failcnt", "blkio", "serviced",
            )
            if files.paths[k]
        ]  # fmt: skip

    def read(self, files: CgroupFiles) -> CgroupStats:
        paths = files.paths
        if files.limits_due():
            quota, period = _optional_int(paths["quota"]), _optional_int(paths["period"])
            cores = _quota_cores(quota, period) if quota and period else None
            memory_limit = _read_int(paths["memory_limit"])
            files.keep_limits(cores, _limit(memory_limit))
            files.spec = {
                "memory_limit": _spec_limit(memory_limit),
                "memory_reservation": _spec_limit(_optional_int(paths["memory_soft_limit"])),
                "memory_swap": _spec_limit(_optional_int(paths["memory_swap_limit"])),
                "cpu_shares": float(_optional_int(paths["shares"]) or 0),
                "cpu_period": float(period or 0),
            }
            if quota is not None and quota > 0:
                files.spec["cpu_quota"] = float(quota)
        user = system = None
        try:
            ticks = _flat_keyed(files.read("stat"))
            user, system = int(ticks["user"]) / HZ, int(ticks["system"]) / HZ
        except (OSError, KeyError):
            pass
        mem_stat = _flat_keyed(files.read("memory_stat"))
        usage = int(files.read("memory_usage"))
        inactive = _int_of(mem_stat, "total_inactive_file", "inactive_file") or 0
        io_devices = self._per_device(files)
        read_bytes = sum(d[0] for d in io_devices.values())
        write_bytes = sum(d[1] for d in io_devices.values())
        try:
            cpu_stat = _flat_keyed(files.read("cpu_stat"))
        except OSError:
            cpu_stat = {}
        failures = {
            (kind, scope): value
            for kind in ("pgfault", "pgmajfault")
            for scope, key in (("container", kind), ("hierarchy", f"total_{kind}"))
            if (value := _int_of(mem_stat, key)) is not None
        }
        return CgroupStats(
            **_throttling(cpu_stat, "throttled_time", 1e9),  # type: ignore[arg-type]
            memory_swap_bytes=_int_of(mem_stat, "total_swap", "swap"),
            memory_mapped_file_bytes=_int_of(mem_stat, "total_mapped_file", "mapped_file"),
            memory_max_usage_bytes=files.optional_int("memory_max_usage"),
            memory_failcnt=files.optional_int("memory_failcnt"),
            memory_failures=failures,
            io_devices=io_devices,
            spec=files.spec,
            cpu_seconds=int(files.read("usage")) / 1e9,
            cpu_user_seconds=user,
            cpu_system_seconds=system,
            cpu_limit_cores=files.limits[0],
            memory_usage_bytes=usage,
            memory_working_set_bytes=max(0, usage - inactive),
            memory_rss_bytes=_int_of(mem_stat, "total_rss", "rss"),
            memory_cache_bytes=_int_of(mem_stat, "total_cache", "cache"),
            memory_limit_bytes=files.limits[1],
            io_read_bytes=read_bytes,
            io_write_bytes=write_bytes,
        )

    @staticmethod
    def _per_device(files: CgroupFiles) -> dict[str, list[int]]:
        """ "MAJ:MIN" → [read bytes, written bytes, reads, writes]; the byte totals are
        their sums. Empty where there is no blkio accounting (the root cgroup)."""
        devices: dict[str, list[int]] = {}
        for key, offset in (("blkio", 0), ("serviced", 2)):
            try:
                text = files.read(key)
            except OSError:
                continue
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] in ("Read", "Write"):
                    slot = devices.setdefault(parts[0], [0, 0, 0, 0])
                    slot[offset + (parts[1] == "Write")] += int(parts[2])
        return devices
