"""cgroup v2: one unified hierarchy, every controller's files in one directory."""

from __future__ import annotations

import contextlib
from pathlib import Path

from .fdcache import CgroupFiles
from .procfs import _read, read_proc_cgroup
from .stats import (
    CgroupStats,
    Hierarchy,
    _flat_keyed,
    _int_of,
    _limit,
    _optional_int,
    _quota_cores,
    _seconds,
    _spec_limit,
    _throttling,
)

V2_FILES = {
    "cpu": "cpu.stat",
    "cpu_max": "cpu.max",
    "cpu_weight": "cpu.weight",
    "memory_stat": "memory.stat",
    "memory_current": "memory.current",
    "memory_max": "memory.max",
    "memory_low": "memory.low",
    "memory_peak": "memory.peak",
    "memory_events": "memory.events",
    "swap_current": "memory.swap.current",
    "swap_max": "memory.swap.max",
    "io": "io.stat",
    "tasks": "cgroup.threads",
}


def _v2_limit(path: str) -> int | None:
    """A v2 limit file: `max` (or no file) is unlimited."""
    try:
        raw = _read(path).strip()
    except OSError:
        return None
    return None if raw == "max" else _limit(int(raw))


def _weight_to_shares(weight: int) -> float:
    """cgroup v2's cpu.weight (1..10000) as v1 cpu.shares, the mapping cAdvisor uses."""
    return float(2 + ((weight - 1) * 262142) // 9999)


class CgroupV2(Hierarchy):
    version = 2

    def locate(self, container_id: str, pid: int) -> CgroupFiles:
        base: Path | None = None
        if pid > 0:
            with contextlib.suppress(OSError, ValueError, KeyError):
                base = self.root / read_proc_cgroup(self.proc_root, pid)[""].lstrip("/")
        if base is None:
            for rel in (f"system.slice/docker-{container_id}.scope", f"docker/{container_id}"):
                if (self.root / rel).is_dir():
                    base = self.root / rel
                    break
        if base is None:
            raise FileNotFoundError(f"no cgroup found for container {container_id[:12]}")
        paths = {key: str(base / name) for key, name in V2_FILES.items()}
        return CgroupFiles(paths, budget=self.budget)

    def root_files(self) -> CgroupFiles:
        """The host's root cgroup (cAdvisor's id="/"); v2 keeps no memory.current there."""
        paths = {key: str(self.root / name) for key, name in V2_FILES.items()}
        paths["tasks"] = ""  # every thread of the host: not the root's to count
        return CgroupFiles(paths, budget=self.budget)

    @staticmethod
    def files(files: CgroupFiles) -> list[str]:
        return [
            files.paths[k]
            for k in ("cpu", "memory_stat", "memory_current", "memory_peak", "memory_events", "io")
        ]

    def read(self, files: CgroupFiles) -> CgroupStats:
        paths = files.paths
        if files.limits_due():
            try:
                quota, period = _read(paths["cpu_max"]).split()
                cores = None if quota == "max" else _quota_cores(int(quota), int(period))
            except (OSError, ValueError):
                cores = None
            mem_limit = _v2_limit(paths["memory_max"])
            files.keep_limits(cores, mem_limit)
            weight = _optional_int(paths["cpu_weight"])
            try:
                quota_text, period_text = _read(paths["cpu_max"]).split()
            except (OSError, ValueError):
                quota_text, period_text = "max", "0"
            files.spec = {
                "memory_limit": _spec_limit(mem_limit),
                "memory_reservation": _spec_limit(_v2_limit(paths["memory_low"])),
                "memory_swap": _spec_limit(_v2_limit(paths["swap_max"])),
                "cpu_shares": _weight_to_shares(weight) if weight else 0.0,
                "cpu_period": float(period_text),
            }
            if quota_text != "max":
                files.spec["cpu_quota"] = float(quota_text)
        cpu = _flat_keyed(files.read("cpu"))
        mem_stat = _flat_keyed(files.read("memory_stat"))
        usage = files.optional_int("memory_current")
        if usage is None:  # the root cgroup: what the host uses
            usage = (_int_of(mem_stat, "anon") or 0) + (_int_of(mem_stat, "file") or 0)
        devices: dict[str, list[int]] = {}
        try:
            for line in files.read("io").splitlines():
                device, *items = line.split()
                fields = dict(item.partition("=")[::2] for item in items)
                devices[device] = [
                    int(fields.get(key, 0)) for key in ("rbytes", "wbytes", "rios", "wios")
                ]
        except OSError:
            pass
        read_bytes = sum(d[0] for d in devices.values())
        write_bytes = sum(d[1] for d in devices.values())
        try:
            events = _flat_keyed(files.read("memory_events"))
        except OSError:
            events = {}
        failures = {
            (kind, scope): value
            for kind in ("pgfault", "pgmajfault")
            for scope in ("container", "hierarchy")  # v2's memory.stat is hierarchical
            if (value := _int_of(mem_stat, kind)) is not None
        }
        return CgroupStats(
            **_throttling(cpu, "throttled_usec", 1e6),  # type: ignore[arg-type]
            memory_swap_bytes=files.optional_int("swap_current"),
            memory_mapped_file_bytes=_int_of(mem_stat, "file_mapped"),
            memory_max_usage_bytes=files.optional_int("memory_peak"),
            memory_failcnt=_int_of(events, "max"),
            memory_failures=failures,
            io_devices=devices,
            spec=files.spec,
            cpu_seconds=int(cpu["usage_usec"]) / 1e6,
            cpu_user_seconds=_seconds(_int_of(cpu, "user_usec")),
            cpu_system_seconds=_seconds(_int_of(cpu, "system_usec")),
            cpu_limit_cores=files.limits[0],
            memory_usage_bytes=usage,
            memory_working_set_bytes=max(0, usage - (_int_of(mem_stat, "inactive_file") or 0)),
            memory_rss_bytes=_int_of(mem_stat, "anon"),
            memory_cache_bytes=_int_of(mem_stat, "file"),
            memory_limit_bytes=files.limits[1],
            io_read_bytes=read_bytes,
            io_write_bytes=write_bytes,
        )
