"""node_exporter's netdev collector: every /proc/net/dev column, and rx_nohandler, of every
interface but loopback (node_exporter 1.5 reads them over rtnetlink and leaves loopback
out; its netclass collector lists it)."""

from __future__ import annotations

from .source import Paths, Row, read_int

RECEIVE = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
TRANSMIT = ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")
IFF_LOOPBACK = 0x8  # <linux/if.h>


def collect(paths: Paths) -> list[Row]:
    rows = []
    ignored = set(paths.options.get("ignored_devices", ()))  # type: ignore[call-overload]
    for line in (paths.proc / "net" / "dev").read_text().splitlines()[2:]:
        device, _, numbers = line.partition(":")
        device = device.strip()
        flags = read_int(paths.sys / "class" / "net" / device / "flags")
        loopback = device == "lo" if flags is None else bool(flags & IFF_LOOPBACK)
        if device in ignored or loopback:
            continue
        values = numbers.split()
        labels = {"device": device}
        columns = [f"receive_{c}" for c in RECEIVE] + [f"transmit_{c}" for c in TRANSMIT]
        for column, value in zip(columns, values, strict=False):
            help_text = f"Network device statistic {column}."
            rows.append(
                Row(f"node_network_{column}_total", float(value), "counter", help_text, labels)
            )
        nohandler = read_int(paths.sys / "class" / "net" / device / "statistics" / "rx_nohandler")
        if nohandler is not None:
            help_text = "Network device statistic receive_nohandler."
            rows.append(
                Row("node_network_receive_nohandler_total", nohandler, "counter", help_text, labels)
            )
    return rows
