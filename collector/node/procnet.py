"""node_exporter's collectors over /proc/net and /proc/pressure: pressure, softnet,
udp_queues, arp, conntrack."""

from __future__ import annotations

from collections import Counter

from .source import Paths, Row, read_int

PRESSURE = {  # (resource, line) → (name, HELP)
    ("cpu", "some"): (
        "node_pressure_cpu_waiting_seconds_total",
        "Total time in seconds that processes have waited for CPU time",
    ),
    ("io", "some"): (
        "node_pressure_io_waiting_seconds_total",
        "Total time in seconds that processes have waited due to IO congestion",
    ),
    ("io", "full"): (
        "node_pressure_io_stalled_seconds_total",
        "Total time in seconds no process could make progress due to IO congestion",
    ),
    ("memory", "some"): (
        "node_pressure_memory_waiting_seconds_total",
        "Total time in seconds that processes have waited for memory",
    ),
    ("memory", "full"): (
        "node_pressure_memory_stalled_seconds_total",
        "Total time in seconds no process could make progress due to memory congestion",
    ),
}
SOFTNET = (  # /proc/net/softnet_stat column → (name, HELP)
    ("node_softnet_processed_total", "Number of processed packets"),
    ("node_softnet_dropped_total", "Number of dropped packets"),
    ("node_softnet_times_squeezed_total", "Number of times processing packets ran out of quota"),
)
# /proc/net/stat/nf_conntrack column → name (summed over CPUs)
CONNTRACK_STATS = {
    "found": "Number of searched entries which were successful.",
    "invalid": "Number of packets seen which can not be tracked.",
    "ignore": "Number of packets seen which are already connected to a conntrack entry.",
    "insert": "Number of entries inserted into the list.",
    "insert_failed": "Number of entries for which list insertion was attempted but failed.",
    "drop": "Number of packets dropped due to conntrack failure.",
    "early_drop": "Number of dropped conntrack entries to make room for new ones, if maximum "
    "table size was reached.",
    "search_restart": "Number of conntrack table lookups which had to be restarted due to "
    "hashtable resizes.",
}


def pressure(paths: Paths) -> list[Row]:
    rows = []
    for resource in ("cpu", "io", "memory"):
        try:
            text = (paths.proc / "pressure" / resource).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            kind, *pairs = line.split()
            fields = dict(pair.split("=") for pair in pairs)
            if (resource, kind) in PRESSURE and "total" in fields:
                name, help_text = PRESSURE[(resource, kind)]
                rows.append(Row(name, int(fields["total"]) / 1e6, "counter", help_text))
    return rows


def softnet(paths: Paths) -> list[Row]:
    rows = []
    for cpu, line in enumerate((paths.proc / "net" / "softnet_stat").read_text().splitlines()):
        values = line.split()
        for (name, help_text), value in zip(SOFTNET, values[:3], strict=False):
            rows.append(Row(name, float(int(value, 16)), "counter", help_text, {"cpu": str(cpu)}))
    return rows


def udp_queues(paths: Paths) -> list[Row]:
    rows = []
    help_text = "Number of allocated memory in the kernel for UDP datagrams in bytes."
    for ip, file in (("v4", "udp"), ("v6", "udp6")):
        try:
            lines = (paths.proc / "net" / file).read_text().splitlines()[1:]
        except OSError:
            continue
        tx = rx = 0
        for line in lines:
            queues = line.split()[4]
            tx_hex, _, rx_hex = queues.partition(":")
            tx, rx = tx + int(tx_hex, 16), rx + int(rx_hex, 16)
        for queue, value in (("tx", tx), ("rx", rx)):
            rows.append(Row("node_udp_queues", float(value), "gauge", help_text,
                            {"ip": ip, "queue": queue}))  # fmt: skip
    return rows


def arp(paths: Paths) -> list[Row]:
    devices = Counter(
        line.split()[5] for line in (paths.proc / "net" / "arp").read_text().splitlines()[1:]
    )
    return [
        Row("node_arp_entries", float(n), "gauge", "ARP entries by device", {"device": d})
        for d, n in sorted(devices.items())
    ]


def conntrack(paths: Paths) -> list[Row]:
    netfilter = paths.proc / "sys" / "net" / "netfilter"
    count = read_int(netfilter / "nf_conntrack_count")
    limit = read_int(netfilter / "nf_conntrack_max")
    if count is None or limit is None:
        return []  # no conntrack module loaded
    rows = [
        Row("node_nf_conntrack_entries", count, "gauge",
            "Number of currently allocated flow entries for connection tracking."),
        Row("node_nf_conntrack_entries_limit", limit, "gauge",
            "Maximum size of connection tracking table."),
    ]  # fmt: skip
    try:
        lines = (paths.proc / "net" / "stat" / "nf_conntrack").read_text().splitlines()
    except OSError:
        return rows
    columns = lines[0].split()
    totals = Counter[str]()
    for line in lines[1:]:
        for column, value in zip(columns, line.split(), strict=False):
            totals[column] += int(value, 16)
    for column, help_text in CONNTRACK_STATS.items():
        if column in totals:
            rows.append(Row(f"node_nf_conntrack_stat_{column}", float(totals[column]), "gauge",
                            help_text))  # fmt: skip
    return rows
