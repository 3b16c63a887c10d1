"""node_exporter's small collectors: uname, os, time, selinux, entropy, filefd, loadavg."""

from __future__ import annotations

import os
import re
import time as clock

from .source import Paths, Row, read_int

OS_LABELS = (
    "build_id", "id", "id_like", "image_id", "image_version", "name", "pretty_name",
    "variant", "variant_id", "version", "version_codename", "version_id",
)  # fmt: skip
OS_INFO_HELP = (
    "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, "
    "image_version, name, pretty_name, variant, variant_id, version, version_codename, "
    "version_id."
)
VERSION = re.compile(r"^\d+(\.\d+)?")


def uname(paths: Paths) -> list[Row]:
    u = os.uname()
    try:
        domain = (paths.proc / "sys" / "kernel" / "domainname").read_text().strip()
    except OSError:
        domain = "(none)"
    labels = {
        "domainname": domain,
        "machine": u.machine,
        "nodename": u.nodename,
        "release": u.release,
        "sysname": u.sysname,
        "version": u.version,
    }
    help_text = "Labeled system information as provided by the uname system call."
    return [Row("node_uname_info", 1.0, "gauge", help_text, labels)]


def os_release(paths: Paths) -> list[Row]:
    for path in (paths.etc / "os-release", paths.etc.parent / "usr" / "lib" / "os-release"):
        try:
            text = path.read_text()
            break
        except OSError:
            continue
    else:
        return []
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip().strip('"').strip("'")
    rows = [
        Row("node_os_info", 1.0, "gauge", OS_INFO_HELP, {k: fields.get(k, "") for k in OS_LABELS})
    ]
    version = VERSION.match(fields.get("version_id", ""))
    if version:
        labels = {k: fields.get(k, "") for k in ("id", "id_like", "name")}
        help_text = "Metric containing the major.minor part of the OS version."
        rows.append(Row("node_os_version", float(version.group(0)), "gauge", help_text, labels))
    return rows


def time(paths: Paths) -> list[Row]:
    now = clock.time()
    local = clock.localtime(now)
    rows = [
        Row("node_time_seconds", now, "gauge", "System time in seconds since epoch (1970)."),
        Row("node_time_zone_offset_seconds", float(local.tm_gmtoff), "gauge",
            "System time zone offset in seconds.", {"time_zone": local.tm_zone}),
    ]  # fmt: skip
    root = paths.sys / "devices" / "system" / "clocksource"
    for source in sorted(root.glob("clocksource[0-9]*")) if root.exists() else []:
        device = source.name.removeprefix("clocksource")
        try:
            available = (source / "available_clocksource").read_text().split()
            current = (source / "current_clocksource").read_text().strip()
        except OSError:
            continue
        where = "'/sys/devices/system/clocksource'"
        for name in available:
            rows.append(Row("node_time_clocksource_available_info", 1.0, "gauge",
                            f"Available clocksources read from {where}.",
                            {"clocksource": name, "device": device}))  # fmt: skip
        rows.append(Row("node_time_clocksource_current_info", 1.0, "gauge",
                        f"Current clocksource read from {where}.",
                        {"clocksource": current, "device": device}))  # fmt: skip
    return rows


def selinux(paths: Paths) -> list[Row]:
    enabled = (paths.sys / "fs" / "selinux" / "enforce").exists()
    help_text = "SELinux is enabled, 1 is true, 0 is false"
    return [Row("node_selinux_enabled", float(enabled), "gauge", help_text)]


def entropy(paths: Paths) -> list[Row]:
    random = paths.proc / "sys" / "kernel" / "random"
    rows = []
    for file, name, help_text in (
        ("entropy_avail", "node_entropy_available_bits", "Bits of available entropy."),
        ("poolsize", "node_entropy_pool_size_bits", "Bits of entropy pool."),
    ):
        value = read_int(random / file)
        if value is not None:
            rows.append(Row(name, value, "gauge", help_text))
    return rows


def filefd(paths: Paths) -> list[Row]:
    allocated, _, maximum = (paths.proc / "sys" / "fs" / "file-nr").read_text().split()
    return [
        Row("node_filefd_allocated", float(allocated), "gauge",
            "File descriptor statistics: allocated."),
        Row("node_filefd_maximum", float(maximum), "gauge", "File descriptor statistics: maximum."),
    ]  # fmt: skip


def loadavg(paths: Paths) -> list[Row]:
    """node_exporter's loadavg collector: /proc/loadavg's first three fields."""
    fields = (paths.proc / "loadavg").read_text().split()
    return [
        Row(f"node_load{minutes}", float(value), "gauge", f"{minutes}m load average.")
        for minutes, value in zip((1, 5, 15), fields[:3], strict=True)
    ]
