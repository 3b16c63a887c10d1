"""The container metric map: cAdvisor's names, labels, types and HELP, so existing
dashboards work unchanged.

Each entry maps a metric name to how to read it from one container's reading; a value of
None leaves the series out (that cgroup version has no such file). Adding a metric is
adding a line here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ebbflow.model import MetricKind
from ebbflow.names import (
    CONTAINER_CPU_PERCENT,
    CONTAINER_MEMORY_PERCENT,
    CONTAINER_THROTTLED_PERCENT,
)

from .cgroups import CgroupStats, NetStats


@dataclass(frozen=True, slots=True)
class Reading:
    """One container's numbers at one instant, with the derived percentages."""

    cgroup: CgroupStats
    cpu_percent: float | None
    memory_percent: float | None
    started_at: float
    restart_count: int
    tasks: dict[str, int] = field(default_factory=dict)  # state → count
    load_average_10s: float | None = None
    throttled_percent: float | None = None  # of the CFS periods since the last cycle


Extract = Callable[[Reading], float | None]
Extra = tuple[tuple[str, str], ...]  # a series' own labels beside the container's


@dataclass(frozen=True, slots=True)
class Metric:
    kind: MetricKind
    help: str
    extract: Extract
    labels: Extra = ()


def _spec(key: str) -> Extract:
    return lambda r: r.cgroup.spec.get(key)


CONTAINER_METRICS: dict[str, Metric] = {
    "container_cpu_usage_seconds_total": Metric(
        "counter", "Cumulative cpu time consumed in seconds.", lambda r: r.cgroup.cpu_seconds,
        (("cpu", "total"),),
    ),
    "container_cpu_user_seconds_total": Metric(
        "counter", "Cumulative user cpu time consumed in seconds.",
        lambda r: r.cgroup.cpu_user_seconds,
    ),
    "container_cpu_system_seconds_total": Metric(
        "counter", "Cumulative system cpu time consumed in seconds.",
        lambda r: r.cgroup.cpu_system_seconds,
    ),
    "container_cpu_cfs_periods_total": Metric(
        "counter", "Number of elapsed enforcement period intervals.",
        lambda r: r.cgroup.cfs_periods,
    ),
    "container_cpu_cfs_throttled_periods_total": Metric(
        "counter", "Number of throttled period intervals.",
        lambda r: r.cgroup.cfs_throttled_periods,
    ),
    "container_cpu_cfs_throttled_seconds_total": Metric(
        "counter", "Total time duration the container has been throttled.",
        lambda r: r.cgroup.cfs_throttled_seconds,
    ),
    "container_cpu_load_average_10s": Metric(
        "gauge", "Value of container cpu load average over the last 10 seconds.",
        lambda r: r.load_average_10s,
    ),
    "container_spec_cpu_limit_cores": Metric(
        "gauge", "CPU limit in cores (absent when unlimited).",
        lambda r: r.cgroup.cpu_limit_cores,
    ),
    "container_spec_cpu_quota": Metric("gauge", "CPU quota of the container.", _spec("cpu_quota")),
    "container_spec_cpu_period": Metric(
        "gauge", "CPU period of the container.", _spec("cpu_period")
    ),
    "container_spec_cpu_shares": Metric(
        "gauge", "CPU share of the container.", _spec("cpu_shares")
    ),
    "container_memory_usage_bytes": Metric(
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        lambda r: r.cgroup.memory_usage_bytes,
    ),
    "container_memory_working_set_bytes": Metric(
        "gauge", "Current working set in bytes.", lambda r: r.cgroup.memory_working_set_bytes
    ),
    "container_memory_rss": Metric(
        "gauge", "Size of RSS in bytes.", lambda r: r.cgroup.memory_rss_bytes
    ),
    "container_memory_cache": Metric(
        "gauge", "Number of bytes of page cache memory.", lambda r: r.cgroup.memory_cache_bytes
    ),
    "container_memory_swap": Metric(
        "gauge", "Container swap usage in bytes.", lambda r: r.cgroup.memory_swap_bytes
    ),
    "container_memory_mapped_file": Metric(
        "gauge", "Size of memory mapped files in bytes.",
        lambda r: r.cgroup.memory_mapped_file_bytes,
    ),
    "container_memory_max_usage_bytes": Metric(
        "gauge", "Maximum memory usage recorded in bytes",
        lambda r: r.cgroup.memory_max_usage_bytes,
    ),
    "container_memory_failcnt": Metric(
        "counter", "Number of memory usage hits limits", lambda r: r.cgroup.memory_failcnt
    ),
    "container_spec_memory_limit_bytes": Metric(
        "gauge", "Memory limit for the container.", _spec("memory_limit")
    ),
    "container_spec_memory_reservation_limit_bytes": Metric(
        "gauge", "Memory reservation limit for the container.", _spec("memory_reservation")
    ),
    "container_spec_memory_swap_limit_bytes": Metric(
        "gauge", "Memory swap limit for the container.", _spec("memory_swap")
    ),
    "container_start_time_seconds": Metric(
        "gauge", "Start time of the container since unix epoch in seconds.",
        lambda r: r.started_at or None,
    ),
    "ebbflow_container_restarts_total": Metric(
        "counter", "Restarts of the container by Docker's restart policy.",
        lambda r: r.restart_count,
    ),
    CONTAINER_CPU_PERCENT: Metric(
        "gauge", "CPU use over the last cycle, percent of the CPU limit, else of one core.",
        lambda r: r.cpu_percent,
    ),
    CONTAINER_THROTTLED_PERCENT: Metric(
        "gauge", "CFS periods since the last cycle in which the CPU limit throttled the "
        "container, percent (`ebbflow.scale.metric=throttling`).",
        lambda r: r.throttled_percent,
    ),
    CONTAINER_MEMORY_PERCENT: Metric(
        "gauge", "Working set, percent of the memory limit, else of the node's memory.",
        lambda r: r.memory_percent,
    ),
}  # fmt: skip

FAILURES_HELP = "Cumulative count of memory allocation failures."
TASKS_HELP = "Number of tasks in given state"
TASK_STATES = ("sleeping", "running", "stopped", "uninterruptible", "iowaiting")
# [read bytes, written bytes, reads, writes] index → (name, HELP), per `device`
FS_METRICS = (
    ("container_fs_reads_bytes_total", "Cumulative count of bytes read"),
    ("container_fs_writes_bytes_total", "Cumulative count of bytes written"),
    ("container_fs_reads_total", "Cumulative count of reads completed"),
    ("container_fs_writes_total", "Cumulative count of writes completed"),
)


FAILURE_LABELS = {
    (kind, scope): (("failure_type", kind), ("scope", scope))
    for kind in ("pgfault", "pgmajfault")
    for scope in ("container", "hierarchy")
}
TASK_LABELS = tuple((state, (("state", state),)) for state in TASK_STATES)


def labelled_series(
    reading: Reading, devices: dict[str, str]
) -> Iterator[tuple[str, MetricKind, str, Extra, float]]:
    """The series with labels of their own: memory failures, tasks by state, block I/O
    by device (`devices` maps MAJ:MIN to /dev/NAME)."""
    extra: Extra
    for key, value in reading.cgroup.memory_failures.items():
        extra = FAILURE_LABELS.get(key) or (("failure_type", key[0]), ("scope", key[1]))
        yield "container_memory_failures_total", "counter", FAILURES_HELP, extra, float(value)
    if reading.tasks:
        for state, extra in TASK_LABELS:
            count = float(reading.tasks.get(state, 0))
            yield "container_tasks_state", "gauge", TASKS_HELP, extra, count
    for number, values in reading.cgroup.io_devices.items():
        extra = (("device", devices.get(number, number)),)
        for (name, help_text), total in zip(FS_METRICS, values, strict=True):
            yield name, "counter", help_text, extra, float(total)


NETWORK_METRICS: dict[str, tuple[str, Callable[[NetStats], int]]] = {
    "container_network_receive_bytes_total": (
        "Cumulative count of bytes received",
        lambda n: n.rx_bytes,
    ),
    "container_network_receive_packets_total": (
        "Cumulative count of packets received",
        lambda n: n.rx_packets,
    ),
    "container_network_receive_errors_total": (
        "Cumulative count of errors encountered while receiving",
        lambda n: n.rx_errors,
    ),
    "container_network_receive_packets_dropped_total": (
        "Cumulative count of packets dropped while receiving",
        lambda n: n.rx_dropped,
    ),
    "container_network_transmit_bytes_total": (
        "Cumulative count of bytes transmitted",
        lambda n: n.tx_bytes,
    ),
    "container_network_transmit_packets_total": (
        "Cumulative count of packets transmitted",
        lambda n: n.tx_packets,
    ),
    "container_network_transmit_errors_total": (
        "Cumulative count of errors encountered while transmitting",
        lambda n: n.tx_errors,
    ),
    "container_network_transmit_packets_dropped_total": (
        "Cumulative count of packets dropped while transmitting",
        lambda n: n.tx_dropped,
    ),
}
