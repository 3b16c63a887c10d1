"""Parsers for the app endpoints ebbflow scrapes, each → (name, labels, value, kind) rows.

Names follow the exporters dashboards already use: apache_exporter for `mod_status?auto`,
nginx-prometheus-exporter for `stub_status`; Prometheus text keeps the app's own names.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from ebbflow.model import MetricKind

Row = tuple[str, dict[str, str], float, MetricKind]


def parse_prometheus(text: str) -> list[Row]:
    rows: list[Row] = []
    for family in text_string_to_metric_families(text):
        kind: MetricKind = "counter" if family.type == "counter" else "gauge"
        for sample in family.samples:
            rows.append((sample.name, dict(sample.labels), float(sample.value), kind))
    return rows


# mod_status?auto key → (name, kind, scale)
APACHE_FIELDS: dict[str, tuple[str, MetricKind, float]] = {
    "Total Accesses": ("apache_accesses_total", "counter", 1.0),
    "Total kBytes": ("apache_sent_kilobytes_total", "counter", 1.0),
    "Uptime": ("apache_uptime_seconds_total", "counter", 1.0),
    "CPULoad": ("apache_cpuload", "gauge", 1.0),
    "ReqPerSec": ("apache_requests_per_second", "gauge", 1.0),
    "BytesPerSec": ("apache_bytes_per_second", "gauge", 1.0),
    "ConnsTotal": ("apache_connections", "gauge", 1.0),
}
SCOREBOARD = {
    "_": "idle",
    "S": "startup",
    "R": "read",
    "W": "reply",
    "K": "keepalive",
    "D": "dns",
    "C": "closing",
    "L": "logging",
    "G": "graceful_stop",
    "I": "idle_cleanup",
    ".": "open_slot",
}


def parse_apache(text: str) -> list[Row]:
    rows: list[Row] = []
    seen = False
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key in APACHE_FIELDS:
            name, kind, scale = APACHE_FIELDS[key]
            rows.append((name, {}, float(value) * scale, kind))
            seen = True
        elif key in ("BusyWorkers", "IdleWorkers"):
            state = "busy" if key == "BusyWorkers" else "idle"
            rows.append(("apache_workers", {"state": state}, float(value), "gauge"))
            seen = True
        elif key == "Scoreboard":
            for char, state in SCOREBOARD.items():
                rows.append(
                    ("apache_scoreboard", {"state": state}, float(value.count(char)), "gauge")
                )
            seen = True
    if not seen:
        raise ValueError("not an Apache mod_status?auto page")
    return rows


NGINX = re.compile(
    r"Active connections:\s*(\d+)\s+server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)"
    r"\s+Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)"
)


def parse_nginx(text: str) -> list[Row]:
    match = NGINX.search(text)
    if match is None:
        raise ValueError("not an nginx stub_status page")
    active, accepted, handled, requests, reading, writing, waiting = map(float, match.groups())
    return [
        ("nginx_connections_active", {}, active, "gauge"),
        ("nginx_connections_accepted", {}, accepted, "counter"),
        ("nginx_connections_handled", {}, handled, "counter"),
        ("nginx_http_requests_total", {}, requests, "counter"),
        ("nginx_connections_reading", {}, reading, "gauge"),
        ("nginx_connections_writing", {}, writing, "gauge"),
        ("nginx_connections_waiting", {}, waiting, "gauge"),
    ]


PARSERS: dict[str, Callable[[str], list[Row]]] = {
    "prometheus": parse_prometheus,
    "apache": parse_apache,
    "nginx": parse_nginx,
}
DEFAULT_PATHS = {"prometheus": "/metrics", "apache": "/server-status?auto", "nginx": "/stub_status"}
