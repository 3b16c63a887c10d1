"""node_exporter's filesystem collector: every mount of the host's mount table (pid 1's,
as node_exporter reads it) past node_exporter 1.5's default exclusions, statfs'd."""

from __future__ import annotations

import os
import re

from .metrics import FILESYSTEM, FILESYSTEM_COUNTS
from .source import Paths, Row

# node_exporter 1.5's defaults (`--collector.filesystem.mount-points-exclude` and
# `--collector.filesystem.fs-types-exclude`, collector/filesystem_linux.go). Debian's build
# patches the first to also leave out /run, /mnt and /media.
MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|sysfs|tracefs)$"
)
DEVICE_ERROR = "node_filesystem_device_error"
DEVICE_ERROR_HELP = "Whether an error occurred while getting statistics for the given device."
READONLY_HELP = "Filesystem read-only status."


def mounts(paths: Paths) -> list[tuple[str, str, str, str]]:
    """(device, mount point, fs type, options) per line of pid 1's mount table, or this
    process's when pid 1's is hidden (hidepid), as node_exporter falls back."""
    try:
        text = (paths.proc / "1" / "mounts").read_text()
    except FileNotFoundError:
        text = (paths.proc / "mounts").read_text()
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            raise ValueError(f"malformed mount point information: {line[:200]!r}")
        point = parts[1].replace("\\040", " ").replace("\\011", "\t")
        found.append((parts[0], point, parts[2], parts[3]))
    return found


def collect(paths: Paths) -> list[Row]:
    points = re.compile(str(paths.options.get("mount_points_exclude", MOUNT_POINTS_EXCLUDE)))
    types = re.compile(str(paths.options.get("fs_types_exclude", FS_TYPES_EXCLUDE)))
    rows: list[Row] = []
    seen: set[tuple[str, str, str]] = set()
    for device, point, fstype, options in mounts(paths):
        key = (device, point, fstype)
        if points.search(point) or types.search(fstype) or key in seen:
            continue  # a mount listed twice is one series, as node_exporter dedupes it
        seen.add(key)
        labels = {"device": device, "mountpoint": point, "fstype": fstype}
        try:
            st = os.statvfs(point)
        except OSError:
            rows.append(Row(DEVICE_ERROR, 1.0, "gauge", DEVICE_ERROR_HELP, labels))
            continue
        rows.append(Row(DEVICE_ERROR, 0.0, "gauge", DEVICE_ERROR_HELP, labels))
        for field, (name, help_text) in FILESYSTEM.items():  # sizes in f_bsize units
            size = float(getattr(st, field) * st.f_bsize)
            rows.append(Row(name, size, "gauge", help_text, labels))
        for field, (name, help_text) in FILESYSTEM_COUNTS.items():
            rows.append(Row(name, float(getattr(st, field)), "gauge", help_text, labels))
        readonly = 1.0 if "ro" in options.split(",") else 0.0
        rows.append(Row("node_filesystem_readonly", readonly, "gauge", READONLY_HELP, labels))
    return rows
