"""The node metric maps: psutil field → node_exporter name. A new metric is a new line."""

from __future__ import annotations

# psutil.disk_io_counters(perdisk=True) field → (name, help, scale)
DISK = {
    "read_bytes": ("node_disk_read_bytes_total", "Bytes read.", 1.0),
    "write_bytes": ("node_disk_written_bytes_total", "Bytes written.", 1.0),
    "read_count": ("node_disk_reads_completed_total", "Reads completed.", 1.0),
    "write_count": ("node_disk_writes_completed_total", "Writes completed.", 1.0),
    "busy_time": ("node_disk_io_time_seconds_total", "Seconds spent doing I/O.", 0.001),
}
# psutil.net_io_counters(pernic=True) field → name
NETWORK = {
    "bytes_recv": ("node_network_receive_bytes_total", "Bytes received."),
    "bytes_sent": ("node_network_transmit_bytes_total", "Bytes sent."),
    "packets_recv": ("node_network_receive_packets_total", "Packets received."),
    "packets_sent": ("node_network_transmit_packets_total", "Packets sent."),
    "errin": ("node_network_receive_errs_total", "Receive errors."),
    "errout": ("node_network_transmit_errs_total", "Transmit errors."),
    "dropin": ("node_network_receive_drop_total", "Receive drops."),
    "dropout": ("node_network_transmit_drop_total", "Transmit drops."),
}
# node_exporter's filesystem collector: statvfs field → (name, HELP); sizes in f_bsize units.
FILESYSTEM = {
    "f_blocks": ("node_filesystem_size_bytes", "Filesystem size in bytes."),
    "f_bfree": ("node_filesystem_free_bytes", "Filesystem free space in bytes."),
    "f_bavail": (
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    ),
}
FILESYSTEM_COUNTS = {
    "f_files": ("node_filesystem_files", "Filesystem total file nodes."),
    "f_ffree": ("node_filesystem_files_free", "Filesystem total free file nodes."),
}
