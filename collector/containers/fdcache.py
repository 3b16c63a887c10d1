"""Cgroup files kept open and re-read from offset 0, within a share of the open-file limit.

Opening a cgroup file costs more than reading it: a third of a cycle with a hundred
containers (benchmarks/README.md). When a cgroup is removed, reading its open files fails
(ENODEV), so a stale descriptor is never read as data.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import time
from dataclasses import dataclass, field

LIMITS_TTL = 60.0  # limits change only by `docker update`: re-read them once a minute
MAX_READ = 65536  # bytes: more than any cgroup file a cycle reads
DESCRIPTOR_SHARE = 0.5  # of the open-file limit, for cgroup files kept open


class DescriptorBudget:
    """How many cgroup files may stay open at once, for every container together: past
    it, a file is opened for each read again, as it was before the budget ran out."""

    _process: DescriptorBudget | None = None  # the one `for_this_process` gives out

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @classmethod
    def for_this_process(cls) -> DescriptorBudget:
        """The process's one budget, shared by every reader in it (two readers with a
        share each took every descriptor at 1,000 containers, and then /proc/meminfo and
        the engine's socket failed to open)."""
        if cls._process is None:
            cls._process = cls._measured()
        return cls._process

    @classmethod
    def _measured(cls) -> DescriptorBudget:
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
        return self.read_path(self.paths[key], key)

    def read_path(self, path: str, key: str = "") -> str:
        """A file beside the container's cgroup (its network namespace's /proc/PID/net/dev)
        read and kept open the same way; `release` it when it is no longer the one."""
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

    def release(self, path: str) -> None:
        """A file `read_path` kept open is not read again (the process it belonged to went)."""
        self._forget(path)

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
