"""ebbflow's own process and build, under the names every Prometheus exporter gives them
(client_golang's process collector and `<name>_build_info`), so the "exporter process"
panels of existing dashboards show ebbflow too."""

from __future__ import annotations

import os
import platform
import resource
from collections.abc import Iterable
from pathlib import Path

import psutil

import ebbflow
from ebbflow.metrics import Desc
from ebbflow.model import Sample

CPU = Desc(
    "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter"
)
OPEN_FDS = Desc("process_open_fds", "Number of open file descriptors.")
MAX_FDS = Desc("process_max_fds", "Maximum number of open file descriptors.")
VIRTUAL = Desc("process_virtual_memory_bytes", "Virtual memory size in bytes.")
VIRTUAL_MAX = Desc(
    "process_virtual_memory_max_bytes", "Maximum amount of virtual memory available in bytes."
)
RESIDENT = Desc("process_resident_memory_bytes", "Resident memory size in bytes.")
START = Desc("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
BUILD = Desc(
    "ebbflow_build_info",
    "A metric with a constant '1' value labeled by version, revision and pythonversion from "
    "which ebbflow was built.",
    "gauge",
    ("pythonversion", "revision", "version"),
)
PACKAGE = Path(ebbflow.__file__).resolve().parent
REVISION_FILE = PACKAGE / "REVISION"  # written into the image by scripts/ebbflow-image


def git_revision(checkout: Path) -> str | None:
    """HEAD's commit of a git checkout, read from its files (no git binary needed)."""
    git = checkout / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12] or None
        ref = head.removeprefix("ref: ")
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            commit, _, name = line.partition(" ")
            if name == ref:
                return commit[:12]
    except OSError:
        return None
    return None


def revision() -> str:
    """The commit ebbflow was built from: the image's REVISION file, or the checkout it
    runs from; "unknown" when neither says."""
    try:
        return REVISION_FILE.read_text().strip()[:40] or "unknown"
    except OSError:
        return git_revision(PACKAGE.parent) or "unknown"


# Seconds between counts of the open descriptors where a count lists /proc/self/fd: with
# 1,000 containers' cgroup files kept open, listing them each second was a third of
# ebbflow's idle CPU. Since Linux 6.2 the directory's size is the count (one stat, read
# each round); an older kernel gives 0 there.
FDS_TTL = 10.0
FD_DIR = "/proc/self/fd"


class ProcessTelemetry:
    name = "process"

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.build = (platform.python_version(), revision(), ebbflow.__version__)
        self.started = self.process.create_time()  # fixed: read once
        self._fds: tuple[float, int] | None = None  # (counted at, count)

    def open_fds(self, now: float) -> int:
        """The count of open descriptors: the size of /proc/self/fd where the kernel gives
        it, else a listing every FDS_TTL (it counts its own descriptor too, as
        client_golang's listing does)."""
        try:
            counted = os.stat(FD_DIR).st_size
        except OSError:  # no /proc (not Linux): psutil knows how to count here
            counted = 0
        if counted > 0:
            return counted
        if self._fds is None or not 0 <= now - self._fds[0] < FDS_TTL:
            self._fds = (now, self.process.num_fds())
        return self._fds[1]

    def telemetry(self, now: float) -> Iterable[Sample]:
        # `os.times` is the process's CPU (every thread) without reading a file; memory is
        # one read of /proc/self/statm.
        times = os.times()
        memory = self.process.memory_info()
        fds = self.open_fds(now)
        yield CPU.sample(times.user + times.system, now)
        yield OPEN_FDS.sample(fds, now)
        yield MAX_FDS.sample(limit(resource.RLIMIT_NOFILE), now)
        yield VIRTUAL.sample(memory.vms, now)
        yield VIRTUAL_MAX.sample(limit(resource.RLIMIT_AS), now)
        yield RESIDENT.sample(memory.rss, now)
        yield START.sample(self.started, now)
        yield BUILD.sample(1.0, now, *self.build)


def limit(which: int) -> float:
    """A soft limit; unlimited is the largest value, as client_golang reports it."""
    soft, _ = resource.getrlimit(which)
    return float(2**64 - 1) if soft == resource.RLIM_INFINITY else float(soft)
