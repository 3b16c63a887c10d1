"""node_exporter's cpu and stat collectors: /proc/stat, each on its own."""

from __future__ import annotations

import os

from .source import Paths, Row

USER_HZ = os.sysconf("SC_CLK_TCK")
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# /proc/stat key → (name, kind, HELP)
STAT = {
    "btime": ("node_boot_time_seconds", "gauge", "Node boot time, in unixtime."),
    "ctxt": ("node_context_switches_total", "counter", "Total number of context switches."),
    "intr": ("node_intr_total", "counter", "Total number of interrupts serviced."),
    "processes": ("node_forks_total", "counter", "Total number of forks."),
    "procs_running": ("node_procs_running", "gauge", "Number of processes in runnable state."),
    "procs_blocked": (
        "node_procs_blocked",
        "gauge",
        "Number of processes blocked waiting for I/O to complete.",
    ),
}
CPU_HELP = "Seconds the CPUs spent in each mode."
GUEST_HELP = "Seconds the CPUs spent in guests (VMs) for each mode."


def cpu(paths: Paths) -> list[Row]:
    """node_exporter's cpu collector: seconds per CPU and mode, and guest seconds."""
    rows = []
    for line in (paths.proc / "stat").read_text().splitlines():
        key, *values = line.split()
        if key.startswith("cpu") and key != "cpu":
            cpu = key[3:]
            seconds = [int(v) / USER_HZ for v in values]
            for mode, value in zip(CPU_MODES, seconds, strict=False):
                labels = {"cpu": cpu, "mode": mode}
                rows.append(Row("node_cpu_seconds_total", value, "counter", CPU_HELP, labels))
            for mode, value in zip(("user", "nice"), seconds[8:10], strict=False):
                labels = {"cpu": cpu, "mode": mode}
                rows.append(
                    Row("node_cpu_guest_seconds_total", value, "counter", GUEST_HELP, labels)
                )
    return rows


def collect(paths: Paths) -> list[Row]:
    """node_exporter's stat collector: boot time, context switches, interrupts, forks,
    processes running and blocked."""
    rows = []
    for line in (paths.proc / "stat").read_text().splitlines():
        key, *values = line.split()
        if key in STAT and values:
            name, kind, help_text = STAT[key]
            rows.append(Row(name, float(values[0]), kind, help_text))  # type: ignore[arg-type]
    return rows
