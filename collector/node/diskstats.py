"""node_exporter's diskstats collector: every /proc/diskstats field, its default device
exclusions (partitions, loop, ram and floppy devices), and node_disk_info."""

from __future__ import annotations

import re

from .source import Paths, Row

IGNORED = re.compile(r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")
SECTOR = 512
# field index (after major, minor, device) → (name, scale, kind, HELP)
FIELDS: list[tuple[str, float, str, str]] = [
    (
        "node_disk_reads_completed_total",
        1,
        "counter",
        "The total number of reads completed successfully.",
    ),
    ("node_disk_reads_merged_total", 1, "counter", "The total number of reads merged."),
    (
        "node_disk_read_bytes_total",
        SECTOR,
        "counter",
        "The total number of bytes read successfully.",
    ),
    (
        "node_disk_read_time_seconds_total",
        0.001,
        "counter",
        "The total number of seconds spent by all reads.",
    ),
    (
        "node_disk_writes_completed_total",
        1,
        "counter",
        "The total number of writes completed successfully.",
    ),
    ("node_disk_writes_merged_total", 1, "counter", "The number of writes merged."),
    (
        "node_disk_written_bytes_total",
        SECTOR,
        "counter",
        "The total number of bytes written successfully.",
    ),
    (
        "node_disk_write_time_seconds_total",
        0.001,
        "counter",
        "This is the total number of seconds spent by all writes.",
    ),
    ("node_disk_io_now", 1, "gauge", "The number of I/Os currently in progress."),
    ("node_disk_io_time_seconds_total", 0.001, "counter", "Total seconds spent doing I/Os."),
    (
        "node_disk_io_time_weighted_seconds_total",
        0.001,
        "counter",
        "The weighted # of seconds spent doing I/Os.",
    ),
    (
        "node_disk_discards_completed_total",
        1,
        "counter",
        "The total number of discards completed successfully.",
    ),
    ("node_disk_discards_merged_total", 1, "counter", "The total number of discards merged."),
    (
        "node_disk_discarded_sectors_total",
        1,
        "counter",
        "The total number of sectors discarded successfully.",
    ),
    (
        "node_disk_discard_time_seconds_total",
        0.001,
        "counter",
        "This is the total number of seconds spent by all discards.",
    ),
    (
        "node_disk_flush_requests_total",
        1,
        "counter",
        "The total number of flush requests completed successfully",
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        0.001,
        "counter",
        "This is the total number of seconds spent by all flush requests.",
    ),
]
INFO_HELP = "Info of /sys/block/<block_device>."
UDEV = {  # udev property → node_disk_info label
    "ID_PATH": "path",
    "ID_WWN": "wwn",
    "ID_MODEL": "model",
    "ID_SERIAL_SHORT": "serial",
    "ID_REVISION": "revision",
}


def _udev(paths: Paths, major: str, minor: str) -> dict[str, str]:
    found = dict.fromkeys(UDEV.values(), "")
    try:
        text = (paths.run / "udev" / "data" / f"b{major}:{minor}").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        key, _, value = line.removeprefix("E:").partition("=")
        if line.startswith("E:") and key in UDEV:
            found[UDEV[key]] = value
    return found


def collect(paths: Paths) -> list[Row]:
    rows = []
    for line in (paths.proc / "diskstats").read_text().splitlines():
        major, minor, device, *values = line.split()
        if IGNORED.match(device):
            continue
        labels = {"device": device}
        for (name, scale, kind, help_text), value in zip(FIELDS, values, strict=False):
            rows.append(Row(name, float(value) * scale, kind, help_text, labels))  # type: ignore[arg-type]
        info = {"device": device, "major": major, "minor": minor, **_udev(paths, major, minor)}
        rows.append(Row("node_disk_info", 1.0, "gauge", INFO_HELP, info))
    return rows
