"""The filesystem collector's metric map: statvfs field → node_exporter name and HELP."""

from __future__ import annotations

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
