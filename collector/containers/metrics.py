"""The container metric map: cAdvisor's names, so existing dashboards work unchanged.

Each entry maps a metric name to (kind, help, how to read it from one container's
reading). Adding a metric is adding a line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ebbflow.model import MetricKind

from .cgroups import CgroupStats, NetStats


@dataclass(frozen=True, slots=True)
class Reading:
    """One container's numbers at one instant, with the derived percentages."""

    cgroup: CgroupStats
    cpu_percent: float | None
    memory_percent: float | None
    started_at: float
    restart_count: int


Extract = Callable[[Reading], float | None]

CONTAINER_METRICS: dict[str, tuple[MetricKind, str, Extract]] = {
    "container_cpu_usage_seconds_total": (
        "counter",
        "Cumulative CPU time consumed, seconds.",
        lambda r: r.cgroup.cpu_seconds,
    ),
    "container_cpu_user_seconds_total": (
        "counter",
        "Cumulative user CPU time, seconds.",
        lambda r: r.cgroup.cpu_user_seconds,
    ),
    "container_cpu_system_seconds_total": (
        "counter",
        "Cumulative system CPU time, seconds.",
        lambda r: r.cgroup.cpu_system_seconds,
    ),
    "container_spec_cpu_limit_cores": (
        "gauge",
        "CPU limit in cores (absent when unlimited).",
        lambda r: r.cgroup.cpu_limit_cores,
    ),
    "container_memory_usage_bytes": (
        "gauge",
        "Current memory usage, page cache included.",
        lambda r: r.cgroup.memory_usage_bytes,
    ),
    "container_memory_working_set_bytes": (
        "gauge",
        "Memory usage less inactive file cache: what the OOM killer watches.",
        lambda r: r.cgroup.memory_working_set_bytes,
    ),
    "container_memory_rss": (
        "gauge",
        "Anonymous memory (RSS).",
        lambda r: r.cgroup.memory_rss_bytes,
    ),
    "container_memory_cache": (
        "gauge",
        "Page cache memory.",
        lambda r: r.cgroup.memory_cache_bytes,
    ),
    "container_spec_memory_limit_bytes": (
        "gauge",
        "Memory limit (absent when unlimited).",
        lambda r: r.cgroup.memory_limit_bytes,
    ),
    "container_fs_reads_bytes_total": (
        "counter",
        "Cumulative bytes read from block devices.",
        lambda r: r.cgroup.io_read_bytes,
    ),
    "container_fs_writes_bytes_total": (
        "counter",
        "Cumulative bytes written to block devices.",
        lambda r: r.cgroup.io_write_bytes,
    ),
    "container_start_time_seconds": (
        "gauge",
        "Start time of the container, Unix seconds.",
        lambda r: r.started_at or None,
    ),
    "ebbflow_container_restarts_total": (
        "counter",
        "Restarts of the container by Docker's restart policy.",
        lambda r: r.restart_count,
    ),
    "ebbflow_container_cpu_percent": (
        "gauge",
        "CPU use over the last cycle, percent of the CPU limit, else of one core.",
        lambda r: r.cpu_percent,
    ),
    "ebbflow_container_memory_percent": (
        "gauge",
        "Working set, percent of the memory limit, else of the node's memory.",
        lambda r: r.memory_percent,
    ),
}

NETWORK_METRICS: dict[str, tuple[str, Callable[[NetStats], int]]] = {
    "container_network_receive_bytes_total": ("Bytes received.", lambda n: n.rx_bytes),
    "container_network_receive_packets_total": ("Packets received.", lambda n: n.rx_packets),
    "container_network_receive_errors_total": ("Receive errors.", lambda n: n.rx_errors),
    "container_network_receive_packets_dropped_total": (
        "Packets dropped on receive.",
        lambda n: n.rx_dropped,
    ),
    "container_network_transmit_bytes_total": ("Bytes sent.", lambda n: n.tx_bytes),
    "container_network_transmit_packets_total": ("Packets sent.", lambda n: n.tx_packets),
    "container_network_transmit_errors_total": ("Transmit errors.", lambda n: n.tx_errors),
    "container_network_transmit_packets_dropped_total": (
        "Packets dropped on transmit.",
        lambda n: n.tx_dropped,
    ),
}
