"""The containers input: one cgroupfs read per running container of the nodes on this
machine per cycle, over the core's inventory (a remote engine's containers are discovered,
for policies and healing, but their cgroups cannot be read from here)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ebbflow.bus import Bus
from ebbflow.discovery import Inventory
from ebbflow.metrics import Desc
from ebbflow.model import ContainerInfo, Labels, Sample, SampleBatch, labels_of

from ..base import PollingInput
from ..identity import container_labels
from .cgroups import (
    CgroupFiles,
    CgroupReader,
    DescriptorBudget,
    NetStats,
    block_device_names,
    detect,
    net_dev_path,
    parse_net_dev,
    read_net_dev,
    task_states,
)
from .fsusage import WritableLayers
from .housekeeping import Housekeeping, Schedule
from .metrics import CONTAINER_METRICS, NETWORK_METRICS, Extra, Reading, labelled_series

LOAD_WINDOW = 10.0  # seconds: container_cpu_load_average_10s
TASKS_TTL = 10.0  # seconds between counts of a container's threads by state
# An idle container (its CPU unchanged since its last reads) starts no thread: its count
# by state is kept longer (one read per thread, and with 1,000 idle containers the counts
# were a tenth of the cost).
TASKS_IDLE_TTL = 60.0

log = logging.getLogger("ebbflow.collector.containers")

LAST_SEEN = Desc("container_last_seen", "Last time a container was seen by the exporter")
IDLE = Desc(
    "ebbflow_containers_idle",
    "Containers read less often than every cycle: unchanged since their last reads "
    "(dynamic housekeeping).",
)
# The series whose change puts a container back to every cycle (cAdvisor's StatsEq compares
# its CPU, memory, network and filesystem stats).
CHANGES = frozenset({
    "container_cpu_usage_seconds_total", "container_memory_usage_bytes",
    "container_fs_reads_bytes_total", "container_fs_writes_bytes_total",
    "container_network_receive_bytes_total", "container_network_transmit_bytes_total",
})  # fmt: skip
READ_ERRORS = Desc(
    "ebbflow_containers_read_errors_total",
    "Container cgroup reads that failed (container gone).",
    "counter",
)
PART_ERRORS = Desc(
    "ebbflow_containers_part_read_errors_total",
    "Reads that failed of a part read beside a cgroup, whose series are missing that cycle: "
    "a container's network (/proc/PID/net/dev), the host's network, the host's root cgroup.",
    "counter",
    ("part",),
)
PARTS = ("network", "host_network", "host_cgroup")
KEPT_FILES = Desc(
    "ebbflow_containers_kept_files",
    "cgroup and /proc files kept open between cycles; past the limit a file is opened "
    "for each read (slower, nothing lost).",
)
KEPT_FILES_LIMIT = Desc(
    "ebbflow_containers_kept_files_limit",
    "The most files kept open at once: a share of the process's open-file limit.",
)


# the metric map as rows: (name, extract, kind, HELP, its own labels)
METRIC_ROWS = tuple(
    (name, metric.extract, metric.kind, metric.help, metric.labels)
    for name, metric in CONTAINER_METRICS.items()
)


class SeriesLabels:
    """One container's label sets, each built once: sorting them was a fifth of a cycle,
    and they change only when the container's own labels do (a `docker rename`)."""

    def __init__(self, base: dict[str, str]) -> None:
        self.base = base
        self.pairs = labels_of(base)
        self._with: dict[Extra, Labels] = {}
        # this container's label set for each entry of the metric map (METRIC_ROWS), in
        # its order: a cycle only extracts the values
        self.per_metric = tuple(self.with_(row[4]) if row[4] else self.pairs for row in METRIC_ROWS)

    def with_(self, extra: Extra) -> Labels:
        """The base labels and `extra` ((name, value) pairs, a hashable key)."""
        pairs = self._with.get(extra)
        if pairs is None:
            pairs = self._with[extra] = labels_of({**self.base, **dict(extra)})
        return pairs


@dataclass(frozen=True)
class HostRoots:
    """Where this host's cgroups, /proc and /sys are mounted (a host mounted elsewhere)."""

    cgroup: Path = Path("/sys/fs/cgroup")
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")


@dataclass
class Watched:
    """One container as the input reads it: everything kept between its cycles."""

    files: CgroupFiles  # located once, kept open
    labels: SeriesLabels  # built once
    cpu: tuple[float, float] | None = None  # (wall time, cpu seconds) at the last read
    load: tuple[float, float] | None = None  # (when, 10 s load average)
    periods: tuple[int, int] | None = None  # (CFS periods, throttled) at the last read
    tasks: tuple[float, dict[str, int]] | None = None  # (when, threads by state)
    schedule: Schedule = field(default_factory=Schedule)  # when it is read next
    samples: list[Sample] = field(default_factory=list)  # its last read's, standing between
    # its network namespace's /proc/PID/net/dev, kept open with its cgroup files: a kept
    # descriptor reads the namespace it was opened in, so a new process (a restart) is a
    # new path and the old one is released
    net_dev: str = ""

    def read_net_dev(self, proc_root: Path, pid: int) -> list[NetStats]:
        path = net_dev_path(proc_root, pid)
        if path != self.net_dev:
            if self.net_dev:
                self.files.release(self.net_dev)
            self.net_dev = path
        return parse_net_dev(self.files.read_path(path, "net_dev"))


class ReadCycle(list[Sample]):
    """A cycle's samples, and which run of them is about which container: (its `name`
    label, where its run stops), as a batch's `containers` says (ebbflow/model.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.containers: list[tuple[str, int]] = []


class ContainerInput(PollingInput):
    name = "containers"

    def __init__(
        self,
        bus: Bus,
        inventory: Inventory,
        interval: float,
        timeout: float,
        clock: Callable[[], float],
        roots: HostRoots | None = None,
        extra_labels: tuple[str, ...] = (),
    ) -> None:
        super().__init__(bus, interval, timeout, clock)
        self.housekeeping = Housekeeping()  # every container every cycle; create() sets it
        self._retire = True  # a full batch is due: the first, or a container went
        roots = roots or HostRoots()
        self.inventory = inventory
        self.extra_labels = extra_labels
        self.devices = block_device_names(roots.sys)
        self.layers: WritableLayers | None = None  # set by prepare(), on a local engine
        self._fs_limit: int | None = None
        self.budget = DescriptorBudget.for_this_process()
        self.reader: CgroupReader = detect(roots.cgroup, roots.proc, self.budget)
        self._root_files = self.reader.root_files()
        self._root_labels = SeriesLabels({"id": "/"})
        self.proc_root = roots.proc
        self.node_memory = psutil.virtual_memory().total
        self.watched: dict[str, Watched] = {}  # by container id
        self._idle: set[str] = set()  # ids of those read less often (kept as each is read)
        self._root_samples: list[Sample] = []
        self.read_errors = 0
        self.part_errors = dict.fromkeys(PARTS, 0)
        self._failing_parts: set[tuple[str, str]] = set()  # (part, container id or "/")

    def watched_of(self, info: ContainerInfo) -> Watched:
        """The container's state, its files located on first use; its label sets built
        again only when its labels change (a `docker rename`)."""
        labels = container_labels(info, self.extra_labels)
        watched = self.watched.get(info.id)
        if watched is None:
            files = self.reader.locate(info.id, info.pid)
            watched = self.watched[info.id] = Watched(files, SeriesLabels(labels))
        elif watched.labels.base != labels:
            watched.labels = SeriesLabels(labels)
            self._retire = True  # its series under the old labels go from /metrics at once
        return watched

    def _forget(self, container_id: str) -> None:
        watched = self.watched.pop(container_id, None)
        if watched is not None:
            watched.files.close()
        self._idle.discard(container_id)
        self._failing_parts = {f for f in self._failing_parts if f[1] != container_id}
        if self.layers is not None:
            self.layers.forget(container_id)

    def read_container(self, info: ContainerInfo, now: float) -> list[Sample]:
        watched = self.watched_of(info)
        stats = self.reader.read(watched.files)
        cores = stats.cpu_limit_cores or info.cpu_limit_cores or 1.0
        cpu_percent = None
        if watched.cpu is not None and now > watched.cpu[0]:
            elapsed = now - watched.cpu[0]
            cpu_percent = 100.0 * (stats.cpu_seconds - watched.cpu[1]) / elapsed / cores
        watched.cpu = (now, stats.cpu_seconds)
        mem_limit = stats.memory_limit_bytes or info.memory_limit_bytes or self.node_memory
        idle = self.housekeeping.idle(watched.schedule, self.interval)
        tasks = self._tasks_of(watched, now, idle)
        reading = Reading(
            stats,
            cpu_percent,
            100.0 * stats.memory_working_set_bytes / mem_limit,
            info.started_at,
            info.restart_count,
            tasks,
            self._load_average(watched, tasks, now),
            self._throttled_percent(watched, stats.cfs_periods, stats.cfs_throttled_periods),
        )
        labels = watched.labels
        samples = self.samples(reading, labels, now)
        samples.append(LAST_SEEN.labelled(now, now, labels.pairs))
        if info.network_mode != "host" and info.pid > 0:
            try:
                interfaces = watched.read_net_dev(self.proc_root, info.pid)
            except (OSError, ValueError, IndexError) as err:  # no network series this cycle
                self._part_failed("network", info.id, info.name, err)
            else:
                self._part_read("network", info.id, info.name)
                samples.extend(self._network(interfaces, labels, now))
        samples.extend(self._filesystem(info.id, labels, now, idle))
        return samples

    def _filesystem(
        self, container_id: str, labels: SeriesLabels, now: float, idle: bool
    ) -> list[Sample]:
        if self.layers is None or self._fs_limit is None:
            return []
        usage = self.layers.usage(container_id, idle)
        if usage is None:
            return []
        pairs = labels.with_((("device", self.layers.device),))
        return [
            Sample("container_fs_usage_bytes", float(usage), pairs, now, "gauge",
                   "Number of bytes that are consumed by the container on this filesystem."),
            Sample("container_fs_limit_bytes", float(self._fs_limit), pairs, now, "gauge",
                   "Number of bytes that can be consumed by the container on this filesystem."),
        ]  # fmt: skip

    async def prepare(self) -> None:
        """Where the writable layers live: asked of the (first) local engine once."""
        await super().prepare()
        if self.layers is not None or not self.inventory.local:
            return
        try:
            async with asyncio.timeout(10):
                root, driver = await self.inventory.local[0].docker.storage()
            self.layers = WritableLayers(Path(root), driver) if root else None
        except Exception as err:  # no fs usage series, nothing else lost
            log.info("containers: no container_fs_usage_bytes: %s", err)

    def samples(self, reading: Reading, labels: SeriesLabels, now: float) -> list[Sample]:
        samples = [
            Sample(name, value, pairs, now, kind, help_text)
            for (name, extract, kind, help_text, _), pairs in zip(
                METRIC_ROWS, labels.per_metric, strict=True
            )
            if (value := extract(reading)) is not None
        ]
        samples += [
            Sample(name, value, labels.with_(extra), now, kind, help_text)
            for name, kind, help_text, extra, value in labelled_series(reading, self.devices)
        ]
        return samples

    def _tasks_of(self, watched: Watched, now: float, idle: bool) -> dict[str, int]:
        """Threads by state, re-counted every TASKS_TTL (TASKS_IDLE_TTL when idle): one read
        per thread, and a JVM has hundreds of them."""
        ttl = TASKS_IDLE_TTL if idle else TASKS_TTL
        if watched.tasks is not None and now - watched.tasks[0] < ttl:
            return watched.tasks[1]
        tasks = task_states(watched.files.paths.get("tasks", ""), self.proc_root)
        watched.tasks = (now, tasks)
        return tasks

    @staticmethod
    def _load_average(watched: Watched, tasks: dict[str, int], now: float) -> float | None:
        """Runnable and uninterruptible threads, averaged over 10 s (cAdvisor's load
        reader: the same exponential decay the kernel's load average uses)."""
        if not tasks:
            return None
        load = tasks.get("running", 0) + tasks.get("uninterruptible", 0)
        previous = watched.load
        if previous is None:
            average = float(load)
        else:
            decay = math.exp(-max(0.0, now - previous[0]) / LOAD_WINDOW)
            average = previous[1] * decay + load * (1 - decay)
        watched.load = (now, average)
        return average

    @staticmethod
    def _throttled_percent(
        watched: Watched, periods: int | None, throttled: int | None
    ) -> float | None:
        if periods is None or throttled is None:
            return None
        previous = watched.periods
        watched.periods = (periods, throttled)
        if previous is None or periods <= previous[0]:
            return None  # no period elapsed (no quota, or the first cycle)
        return 100.0 * (throttled - previous[1]) / (periods - previous[0])

    def read_root(self, now: float) -> list[Sample]:
        """The host's root cgroup, cAdvisor's id="/" (host totals on dashboards), and the
        machine_* series."""
        samples = [
            Sample("machine_cpu_cores", float(os.cpu_count() or 0), (), now, "gauge",
                   "Number of logical CPU cores."),
            Sample("machine_memory_bytes", float(self.node_memory), (), now, "gauge",
                   "Amount of memory installed on the machine."),
        ]  # fmt: skip
        # the host's interfaces: those of pid 1's network namespace, as cAdvisor's root row
        try:
            interfaces = read_net_dev(net_dev_path(self.proc_root, 1))
        except (OSError, ValueError, IndexError) as err:  # no network series this cycle
            self._part_failed("host_network", "/", "the host", err)
        else:
            self._part_read("host_network", "/", "the host")
            samples.extend(self._network(interfaces, self._root_labels, now))
        try:
            stats = self.reader.read(self._root_files)
        except (OSError, ValueError, KeyError) as err:
            self._part_failed("host_cgroup", "/", "the host", err)
            return samples
        self._part_read("host_cgroup", "/", "the host")
        reading = Reading(stats, None, None, 0.0, 0)
        return samples + [
            s
            for s in self.samples(reading, self._root_labels, now)
            if s.name.startswith("container_")
        ]

    @staticmethod
    def _network(interfaces: list[NetStats], labels: SeriesLabels, now: float) -> Iterable[Sample]:
        for iface in interfaces:
            pairs = labels.with_((("interface", iface.interface),))
            for name, (help_text, extract) in NETWORK_METRICS.items():
                yield Sample(name, extract(iface), pairs, now, "counter", help_text)

    def read_all(self, containers: list[ContainerInfo]) -> ReadCycle:
        """This cycle's readings: the containers due (all of them without dynamic
        housekeeping) and the host's root. The others' last samples stand (`standing`)."""
        now = self.clock()
        samples = ReadCycle()
        if self.layers is not None:
            self.layers.start_cycle()
            try:
                self._fs_limit = self.layers.limit()
            except OSError:
                self._fs_limit = None
        dynamic = self.housekeeping.dynamic
        for info in containers:
            watched = self.watched.get(info.id)
            if dynamic and not self.housekeeping.due(
                info, watched.schedule if watched else None, now
            ):
                continue
            try:
                fresh = self.read_container(info, now)
            except (OSError, ValueError, KeyError):
                # Gone between the listing and the read: the die event follows shortly.
                self.read_errors += 1
                self._forget(info.id)
                self._retire = True
                continue
            samples.extend(fresh)
            watched = self.watched[info.id]
            samples.containers.append((watched.labels.base.get("name", ""), len(samples)))
            if dynamic:
                watched.samples = fresh
                self.housekeeping.next(watched.schedule, signature(fresh), self.interval, now)
                if self.housekeeping.idle(watched.schedule, self.interval):
                    self._idle.add(info.id)
                else:
                    self._idle.discard(info.id)
        live = {info.id for info in containers}
        for gone in set(self.watched) - live:
            self._forget(gone)
            self._retire = True
        if self.inventory.local:  # this machine's own root cgroup
            self._root_samples = self.read_root(now)
            samples.extend(self._root_samples)
        return samples

    def _part_failed(self, part: str, key: str, subject: str, err: Exception) -> None:
        """Counted each time; logged when it starts failing, not every cycle."""
        self.part_errors[part] += 1
        if (part, key) not in self._failing_parts:
            self._failing_parts.add((part, key))
            log.warning("containers: cannot read the %s of %s (%r): its series are missing "
                        "until it can", part.replace("_", " "), subject, err)  # fmt: skip

    def _part_read(self, part: str, key: str, subject: str) -> None:
        if self._failing_parts and (part, key) in self._failing_parts:
            self._failing_parts.discard((part, key))
            log.info("containers: the %s of %s is read again", part.replace("_", " "), subject)

    def standing(self) -> list[Sample]:
        """Every container's last samples and the root's: the whole set /metrics shows."""
        kept = [s for watched in self.watched.values() for s in watched.samples]
        return kept + self._root_samples

    def publish(self, samples: list[Sample]) -> None:
        """With dynamic housekeeping a cycle reads only some containers: its samples update
        theirs (a partial batch). When a container went, the whole standing set follows as
        a full batch marked `repeat` (nothing new in it), so its series go from /metrics
        at once, as they do when every container is read."""
        runs = tuple(samples.containers) if isinstance(samples, ReadCycle) else ()
        now = self.clock()
        if not self.housekeeping.dynamic:
            self.bus.publish(SampleBatch(self.name, now, tuple(samples), containers=runs))
            return
        self.bus.publish(
            SampleBatch(self.name, now, tuple(samples), replace=False, containers=runs)
        )
        if self._retire:
            self._retire = False
            self.bus.publish(SampleBatch(self.name, now, tuple(self.standing()), repeat=True))

    @property
    def up(self) -> bool:
        """Reading cgroups is not enough: a stale inventory is not working either."""
        return super().up and self.inventory.connected

    def health_problem(self) -> str | None:
        return self.inventory.health_problem() or super().health_problem()

    async def fetch(self) -> list[Sample]:
        containers = [info for d in self.inventory.local for info in d.containers.values()]
        return await asyncio.to_thread(self.read_all, containers)

    async def collect_once(self) -> list[Sample]:
        """Every container, read twice (for the CPU rate): a one-off reading is whole, so
        no container waits for its turn (dynamic housekeeping is for a running input)."""
        self.housekeeping = Housekeeping()
        await self.inventory.sync()
        await self.prepare()
        await self.fetch()  # baseline for the CPU rate
        await asyncio.sleep(0.5)
        return await super().collect_once()

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield from super().telemetry(now)
        yield READ_ERRORS.sample(self.read_errors, now)
        for part in PARTS:
            yield PART_ERRORS.sample(self.part_errors[part], now, part)
        yield KEPT_FILES.sample(self.budget.used, now)
        yield KEPT_FILES_LIMIT.sample(self.budget.limit, now)
        yield IDLE.sample(len(self._idle), now)


def signature(samples: list[Sample]) -> tuple[float, ...]:
    """What says a container changed: its CPU, memory, I/O and network counters."""
    return tuple(s.value for s in samples if s.name in CHANGES)
