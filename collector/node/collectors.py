"""Every node collector, by node_exporter's collector name. Adding one is a module with a
`collect(paths) -> list[Row]` and a line here."""

from __future__ import annotations

from . import (
    diskstats,
    filesystem,
    meminfo,
    netclass,
    netdev,
    netstat,
    procnet,
    sockstat,
    stat,
    system,
    timex,
    vmstat,
)
from .source import Collector

# Run whatever `collectors` says: ebbflow's node health reads the CPU and memory.
ALWAYS = ("cpu", "meminfo", "loadavg", "filesystem")
COLLECTORS: dict[str, Collector] = {
    "cpu": stat.cpu,
    "meminfo": meminfo.collect,
    "loadavg": system.loadavg,
    "filesystem": filesystem.collect,
    "stat": stat.collect,
    "vmstat": vmstat.collect,
    "netstat": netstat.collect,
    "sockstat": sockstat.collect,
    "netclass": netclass.collect,
    "netdev": netdev.collect,
    "diskstats": diskstats.collect,
    "uname": system.uname,
    "os": system.os_release,
    "time": system.time,
    "selinux": system.selinux,
    "entropy": system.entropy,
    "filefd": system.filefd,
    "timex": timex.collect,
    "pressure": procnet.pressure,
    "softnet": procnet.softnet,
    "udp_queues": procnet.udp_queues,
    "arp": procnet.arp,
    "conntrack": procnet.conntrack,
}
