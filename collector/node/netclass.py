"""node_exporter's netclass collector: /sys/class/net/<device>."""

from __future__ import annotations

from pathlib import Path

from .source import Paths, Row, read_int

# sysfs file → (name, kind, scale); HELP is "Network device property: <name less node_network_>"
PROPERTIES: dict[str, tuple[str, str, float]] = {
    "addr_assign_type": ("node_network_address_assign_type", "gauge", 1),
    "carrier": ("node_network_carrier", "gauge", 1),
    "carrier_changes": ("node_network_carrier_changes_total", "counter", 1),
    "carrier_up_count": ("node_network_carrier_up_changes_total", "counter", 1),
    "carrier_down_count": ("node_network_carrier_down_changes_total", "counter", 1),
    "dev_id": ("node_network_device_id", "gauge", 1),
    "dormant": ("node_network_dormant", "gauge", 1),
    "flags": ("node_network_flags", "gauge", 1),
    "ifindex": ("node_network_iface_id", "gauge", 1),
    "iflink": ("node_network_iface_link", "gauge", 1),
    "link_mode": ("node_network_iface_link_mode", "gauge", 1),
    "mtu": ("node_network_mtu_bytes", "gauge", 1),
    "name_assign_type": ("node_network_name_assign_type", "gauge", 1),
    "netdev_group": ("node_network_net_dev_group", "gauge", 1),
    "type": ("node_network_protocol_type", "gauge", 1),
    "speed": ("node_network_speed_bytes", "gauge", 1_000_000 / 8),  # Mbit/s → bytes/s
    "tx_queue_len": ("node_network_transmit_queue_length", "gauge", 1),
}
INFO_HELP = "Non-numeric data from /sys/class/net/<iface>, value is always 1."
UP_HELP = "Value is 1 if operstate is 'up', 0 otherwise."


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def collect(paths: Paths) -> list[Row]:
    rows = []
    root = paths.sys / "class" / "net"
    for device in sorted(p.name for p in root.iterdir()):
        base = root / device
        labels = {"device": device}
        for file, (name, kind, scale) in PROPERTIES.items():
            value = read_int(base / file)
            if value is None:
                continue  # unreadable (a down interface answers EINVAL): left out
            # an unknown speed is -1 in sysfs: node_exporter exports it scaled, -125000
            help_text = f"Network device property: {name.removeprefix('node_network_')}"
            rows.append(Row(name, value * scale, kind, help_text, labels))  # type: ignore[arg-type]
        operstate = _text(base / "operstate")
        info = {
            "address": _text(base / "address"),
            "broadcast": _text(base / "broadcast"),
            "device": device,
            "duplex": _text(base / "duplex"),
            "ifalias": _text(base / "ifalias"),
            "operstate": operstate,
        }
        rows.append(Row("node_network_info", 1.0, "gauge", INFO_HELP, info))
        rows.append(Row("node_network_up", float(operstate == "up"), "gauge", UP_HELP, labels))
    return rows
