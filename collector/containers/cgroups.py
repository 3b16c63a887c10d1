"""Container resource usage read straight from cgroupfs (v1 and v2), never from the stats API.

Reading a handful of small files per container costs microseconds; Docker's stats API
costs tens of milliseconds per container (docs/architecture.md, "Facts measured"). Paths are found once per container
from `/proc/PID/cgroup`, which is right for either cgroup driver.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

UNLIMITED = 1 << 62  # v1 reports "no limit" as a page-rounded 2^63-1
LIMITS_TTL = 60.0  # limits change only by `docker update`: re-read them once a minute
MAX_READ = 65536  # bytes: more than any cgroup file a cycle reads
DESCRIPTOR_SHARE = 0.5  # of the open-file limit, for cgroup files kept open


class DescriptorBudget:
    """How many cgroup files may stay open at once, for every container together: past
    it, a file is opened for each read again, as it was before the budget ran out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @classmethod
    def for_this_process(cls) -> DescriptorBudget:
        """A share of the open-file limit, raised to the hard limit first (as Go programs
        such as node_exporter do at start): 11 files per container are more than the
        usual soft limit of 1024 allows for a hundred containers."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 1 << 16
        if soft != resource.RLIM_INFINITY and soft < wanted:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
        limit = 1 << 16 if soft == resource.RLIM_INFINITY else soft
        return cls(int(limit * DESCRIPTOR_SHARE))


@dataclass
class CgroupFiles:
    """One container's files, resolved once; its limits, cached for LIMITS_TTL.

    The files a cycle reads stay open and are re-read from offset 0 (a seq_file starts
    over there): opening a cgroup file costs more than reading it, a third of a cycle
    with a hundred containers (benchmarks/README.md). When a cgroup is removed, reading
    its open files fails (ENODEV), so a stale descriptor is never read as data: it is
    closed and the path opened again, which fails as a fresh read would."""

    paths: dict[str, str]
    limits: tuple[float | None, int | None] = (None, None)  # (cores, memory bytes)
    limits_read_at: float = field(default=float("-inf"))
    # cAdvisor's container_spec_* values (quota, period, shares, reservation, swap limit),
    # read with the limits
    spec: dict[str, float] = field(default_factory=dict)
    budget: DescriptorBudget | None = None  # None: nothing kept open
    _open: dict[str, int] = field(default_factory=dict)  # path → descriptor

    def read(self, key: str) -> str:
        """The file's text; OSError as for a plain read when it cannot be read."""
        path = self.paths[key]
        fd = self._open.get(path)
        if fd is not None:
            try:
                return os.pread(fd, MAX_READ, 0).decode()
            except OSError:
                self._forget(path)  # stale (its cgroup went): open it again, below
        if not path:
            raise FileNotFoundError(errno.ENOENT, f"no {key} file here")
        fd = os.open(path, os.O_RDONLY)
        try:
            text = os.pread(fd, MAX_READ, 0).decode()
        except BaseException:
            os.close(fd)
            raise
        if (
            self.budget is not None
            and self.budget.used < self.budget.limit
            and self._open.setdefault(path, fd) == fd  # not kept by another thread meanwhile
        ):
            self.budget.used += 1
        else:
            os.close(fd)
        return text

    def optional_int(self, key: str) -> int | None:
        try:
            return int(self.read(key))
        except (OSError, ValueError):
            return None

    def _forget(self, path: str) -> None:
        fd = self._open.pop(path, None)
        if fd is None:
            return  # forgotten by another thread meanwhile
        if self.budget is not None:
            self.budget.used -= 1
        with contextlib.suppress(OSError):
            os.close(fd)

    def close(self) -> None:
        """The container is gone, or no longer read: its descriptors go back."""
        for path in list(self._open):
            self._forget(path)

    @property
    def kept_open(self) -> int:
        return len(self._open)

    def limits_due(self) -> bool:
        return time.monotonic() - self.limits_read_at >= LIMITS_TTL

    def keep_limits(self, cores: float | None, memory: int | None) -> None:
        self.limits = (cores, memory)
        self.limits_read_at = time.monotonic()


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


def _read(path: str | Path) -> str:
    """One small file, without a text-mode file object: a third of the cost of open()."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _read_int(path: str | Path) -> int:
    return int(_read(path))


def _flat_keyed(text: str) -> dict[str, str]:
    """`key value` lines (memory.stat, cpu.stat); values stay text until one is used."""
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


TASK_STATES = {
    "R": "running",
    "S": "sleeping",
    "I": "sleeping",
    "D": "uninterruptible",
    "T": "stopped",
    "t": "stopped",
}


def task_states(tasks_path: str, proc_root: Path) -> dict[str, int]:
    """How many of a cgroup's threads are in each state (cAdvisor's container_tasks_state),
    from each thread's /proc/TID/stat; a thread gone meanwhile is not counted."""
    counts: dict[str, int] = {}
    if not tasks_path:
        return counts
    try:
        tids = _read(tasks_path).split()
    except OSError:
        return counts
    for tid in tids:
        try:
            state = _read(f"{proc_root}/{tid}/stat").rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state in TASK_STATES:
            counts[TASK_STATES[state]] = counts.get(TASK_STATES[state], 0) + 1
    return counts


def block_device_names(sys_root: Path) -> dict[str, str]:
    """MAJ:MIN → /dev/NAME, cAdvisor's `device` label on block I/O series."""
    names: dict[str, str] = {}
    root = sys_root / "dev" / "block"
    try:
        entries = list(root.iterdir())
    except OSError:
        return names
    for entry in entries:
        try:
            for line in (entry / "uevent").read_text().splitlines():
                if line.startswith("DEVNAME="):
                    names[entry.name] = "/dev/" + line.removeprefix("DEVNAME=")
        except OSError:
            continue
    return names


def read_proc_cgroup(proc_root: Path, pid: int) -> dict[str, str]:
    """Controller → path for a process (`""` is the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    for line in _read(proc_root / str(pid) / "cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller.removeprefix("name=")] = path
    return paths


def net_dev_path(proc_root: Path, pid: int) -> str:
    return f"{proc_root}/{pid}/net/dev"


def read_net_dev(path: str) -> list[NetStats]:
    """Interfaces of a network namespace (`net_dev_path`), loopback left out."""
    stats = []
    for line in _read(path).splitlines()[2:]:
        iface, _, rest = line.partition(":")
        iface = iface.strip()
        if iface == "lo" or not rest:
            continue
        f = [int(x) for x in rest.split()]
        stats.append(NetStats(iface, f[0], f[1], f[2], f[3], f[8], f[9], f[10], f[11]))
    return stats


class CgroupV1:
    version = 1

    def __init__(self, root: Path, proc_root: Path, budget: DescriptorBudget | None = None) -> None:
        self.root = root
        self.proc_root = proc_root
        self.budget = budget

    def locate(self, container_id: str, pid: int) -> CgroupFiles:
        """The container's files; its directories come from /proc/PID/cgroup, else the
        cgroupfs and systemd layouts are tried."""
        wanted = ("cpu", "cpuacct", "memory", "blkio")
        dirs: dict[str, Path] | None = None
        if pid > 0:
            try:
                found = read_proc_cgroup(self.proc_root, pid)
                dirs = {c: self.root / c / found[c].lstrip("/") for c in wanted if c in found}
            except (OSError, ValueError):
                pass
        if dirs is None:
            for rel in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
                if (self.root / "memory" / rel).is_dir():
                    dirs = {c: self.root / c / rel for c in wanted}
                    break
        if dirs is None:
            raise FileNotFoundError(f"no cgroup found for container {container_id[:12]}")
        blkio = dirs.get("blkio")
        blkio_file = ""
        if blkio is not None:
            for name in (
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes",
            ):
                if (blkio / name).exists():
                    blkio_file = str(blkio / name)
                    break
        serviced = ""
        if blkio is not None:
            for name in ("blkio.throttle.io_serviced_recursive", "blkio.throttle.io_serviced"):
                if (blkio / name).exists():
                    serviced = str(blkio / name)
                    break
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
            hz = os.sysconf("SC_CLK_TCK")
            user, system = int(ticks["user"]) / hz, int(ticks["system"]) / hz
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


class CgroupV2:
    version = 2

    def __init__(self, root: Path, proc_root: Path, budget: DescriptorBudget | None = None) -> None:
        self.root = root
        self.proc_root = proc_root
        self.budget = budget

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


CgroupReader = CgroupV1 | CgroupV2


def detect(
    root: Path = Path("/sys/fs/cgroup"),
    proc_root: Path = Path("/proc"),
    budget: DescriptorBudget | None = None,
) -> CgroupReader:
    """v2 when the root is the unified hierarchy itself; v1 (or hybrid) otherwise."""
    if (root / "cgroup.controllers").exists():
        return CgroupV2(root, proc_root, budget)
    return CgroupV1(root, proc_root, budget)
