"""Container resource usage read straight from cgroupfs (v1 and v2), never from the stats API.

Reading a handful of small files per container costs microseconds; Docker's stats API
costs tens of milliseconds per container (DESIGN.md). Paths are found once per container
from `/proc/PID/cgroup`, which is right for either cgroup driver.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True, slots=True)
class NetStats:
    interface: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _read_int(path: Path) -> int:
    return int(_read(path).strip())


def _flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines, as in memory.stat and cpu.stat."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            out[key] = int(value)
    return out


def _limit(value: int) -> int | None:
    return None if value <= 0 or value >= UNLIMITED else value


def _quota_cores(quota: int, period: int) -> float | None:
    return quota / period if quota > 0 and period > 0 else None


def read_proc_cgroup(proc_root: Path, pid: int) -> dict[str, str]:
    """Controller → path for a process (`""` is the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    for line in _read(proc_root / str(pid) / "cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller.removeprefix("name=")] = path
    return paths


def read_net_dev(proc_root: Path, pid: int) -> list[NetStats]:
    """Interfaces of the process's network namespace, loopback left out."""
    stats = []
    for line in _read(proc_root / str(pid) / "net" / "dev").splitlines()[2:]:
        iface, _, rest = line.partition(":")
        iface = iface.strip()
        if iface == "lo" or not rest:
            continue
        f = [int(x) for x in rest.split()]
        stats.append(NetStats(iface, f[0], f[1], f[2], f[3], f[8], f[9], f[10], f[11]))
    return stats


class CgroupV1:
    version = 1

    def __init__(self, root: Path, proc_root: Path) -> None:
        self.root = root
        self.proc_root = proc_root

    def locate(self, container_id: str, pid: int) -> dict[str, Path]:
        """Directory per controller; falls back to the cgroupfs and systemd layouts."""
        wanted = ("cpu", "cpuacct", "memory", "blkio")
        if pid > 0:
            try:
                found = read_proc_cgroup(self.proc_root, pid)
                return {c: self.root / c / found[c].lstrip("/") for c in wanted if c in found}
            except (OSError, ValueError):
                pass
        for rel in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
            if (self.root / "memory" / rel).is_dir():
                return {c: self.root / c / rel for c in wanted}
        raise FileNotFoundError(f"no cgroup found for container {container_id[:12]}")

    def read(self, paths: dict[str, Path]) -> CgroupStats:
        cpuacct, cpu, memory = paths["cpuacct"], paths["cpu"], paths["memory"]
        usage_ns = _read_int(cpuacct / "cpuacct.usage")
        user = system = None
        try:
            ticks = _flat_keyed(_read(cpuacct / "cpuacct.stat"))
            hz = os.sysconf("SC_CLK_TCK")
            user, system = ticks["user"] / hz, ticks["system"] / hz
        except (OSError, KeyError):
            pass
        try:
            cores = _quota_cores(
                _read_int(cpu / "cpu.cfs_quota_us"), _read_int(cpu / "cpu.cfs_period_us")
            )
        except OSError:
            cores = None
        mem_stat = _flat_keyed(_read(memory / "memory.stat"))
        usage = _read_int(memory / "memory.usage_in_bytes")
        inactive = mem_stat.get("total_inactive_file", mem_stat.get("inactive_file", 0))
        read_bytes, write_bytes = self._blkio(paths.get("blkio"))
        return CgroupStats(
            cpu_seconds=usage_ns / 1e9,
            cpu_user_seconds=user,
            cpu_system_seconds=system,
            cpu_limit_cores=cores,
            memory_usage_bytes=usage,
            memory_working_set_bytes=max(0, usage - inactive),
            memory_rss_bytes=mem_stat.get("total_rss", mem_stat.get("rss")),
            memory_cache_bytes=mem_stat.get("total_cache", mem_stat.get("cache")),
            memory_limit_bytes=_limit(_read_int(memory / "memory.limit_in_bytes")),
            io_read_bytes=read_bytes,
            io_write_bytes=write_bytes,
        )

    @staticmethod
    def _blkio(blkio: Path | None) -> tuple[int, int]:
        if blkio is None:
            return 0, 0
        for name in (
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes",
        ):
            try:
                text = _read(blkio / name)
            except OSError:
                continue
            read = write = 0
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] == "Read":
                    read += int(parts[2])
                elif len(parts) == 3 and parts[1] == "Write":
                    write += int(parts[2])
            return read, write
        return 0, 0


class CgroupV2:
    version = 2

    def __init__(self, root: Path, proc_root: Path) -> None:
        self.root = root
        self.proc_root = proc_root

    def locate(self, container_id: str, pid: int) -> dict[str, Path]:
        if pid > 0:
            try:
                found = read_proc_cgroup(self.proc_root, pid)
                return {"unified": self.root / found[""].lstrip("/")}
            except (OSError, ValueError, KeyError):
                pass
        for rel in (f"system.slice/docker-{container_id}.scope", f"docker/{container_id}"):
            if (self.root / rel).is_dir():
                return {"unified": self.root / rel}
        raise FileNotFoundError(f"no cgroup found for container {container_id[:12]}")

    def read(self, paths: dict[str, Path]) -> CgroupStats:
        base = paths["unified"]
        cpu = _flat_keyed(_read(base / "cpu.stat"))
        try:
            quota, period = _read(base / "cpu.max").split()
            cores = None if quota == "max" else _quota_cores(int(quota), int(period))
        except (OSError, ValueError):
            cores = None
        mem_stat = _flat_keyed(_read(base / "memory.stat"))
        usage = _read_int(base / "memory.current")
        try:
            raw_max = _read(base / "memory.max").strip()
            mem_limit = None if raw_max == "max" else _limit(int(raw_max))
        except OSError:
            mem_limit = None
        read_bytes = write_bytes = 0
        try:
            for line in _read(base / "io.stat").splitlines():
                for field in line.split()[1:]:
                    key, _, value = field.partition("=")
                    if key == "rbytes":
                        read_bytes += int(value)
                    elif key == "wbytes":
                        write_bytes += int(value)
        except OSError:
            pass
        return CgroupStats(
            cpu_seconds=cpu["usage_usec"] / 1e6,
            cpu_user_seconds=cpu["user_usec"] / 1e6 if "user_usec" in cpu else None,
            cpu_system_seconds=cpu["system_usec"] / 1e6 if "system_usec" in cpu else None,
            cpu_limit_cores=cores,
            memory_usage_bytes=usage,
            memory_working_set_bytes=max(0, usage - mem_stat.get("inactive_file", 0)),
            memory_rss_bytes=mem_stat.get("anon"),
            memory_cache_bytes=mem_stat.get("file"),
            memory_limit_bytes=mem_limit,
            io_read_bytes=read_bytes,
            io_write_bytes=write_bytes,
        )


CgroupReader = CgroupV1 | CgroupV2


def detect(root: Path = Path("/sys/fs/cgroup"), proc_root: Path = Path("/proc")) -> CgroupReader:
    """v2 when the root is the unified hierarchy itself; v1 (or hybrid) otherwise."""
    if (root / "cgroup.controllers").exists():
        return CgroupV2(root, proc_root)
    return CgroupV1(root, proc_root)
