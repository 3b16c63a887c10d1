"""Parsers for the app endpoints ebbflow scrapes, each → rows of samples.

Names follow the exporters dashboards already use: apache_exporter for `mod_status?auto`,
nginx-prometheus-exporter for `stub_status`. Prometheus text and OpenMetrics keep the app's
own names, HELP and types: a histogram or summary stays one family (its `_bucket`, `_sum`
and `_count` samples under one TYPE line), as Prometheus itself would store it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from ebbflow.model import MetricKind


class Row(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float
    kind: MetricKind
    family: str = ""  # the histogram or summary a `_bucket`/`_sum`/`_count` sample is of
    help: str = ""


# A family's type as the text format 0.0.4 has it. OpenMetrics' info and stateset are
# gauges there (as Prometheus stores them); `unknown` is `untyped`.
TEXT_KINDS: dict[str, MetricKind] = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
    "info": "gauge",
    "stateset": "gauge",
}
OPENMETRICS = "application/openmetrics-text"


def parse_prometheus(text: str, content_type: str = "") -> list[Row]:
    families = (
        openmetrics_families(text)  # type: ignore[no-untyped-call]
        if content_type.startswith(OPENMETRICS)
        else text_string_to_metric_families(text)
    )
    rows: list[Row] = []
    for family in families:
        kind = TEXT_KINDS.get(family.type, "untyped")
        for sample in family.samples:
            labels, value = dict(sample.labels), float(sample.value)
            if sample.name == family.name + "_created":
                # OpenMetrics' creation time: a gauge of its own in 0.0.4, as
                # prometheus-client writes it there.
                rows.append(Row(sample.name, labels, value, "gauge", "", family.documentation))
            else:
                part_of = family.name if kind in ("histogram", "summary") else ""
                rows.append(Row(sample.name, labels, value, kind, part_of, family.documentation))
    return rows


# mod_status?auto key → (name, kind, HELP, labels): apache_exporter's, `(*)` marking what
# needs `ExtendedStatus On`.
APACHE_FIELDS: dict[str, tuple[str, MetricKind, str, dict[str, str]]] = {
    "Total Accesses": (
        "apache_accesses_total", "counter", "Current total apache accesses (*)", {}
    ),
    "Total kBytes": ("apache_sent_kilobytes_total", "counter", "Current total kbytes sent (*)", {}),
    "Total Duration": (
        "apache_duration_ms_total", "counter", "Total duration of all registered requests in ms",
        {},
    ),
    "CPULoad": (
        "apache_cpuload", "gauge",
        "The current percentage CPU used by each worker and in total by all workers combined (*)",
        {},
    ),
    "Uptime": ("apache_uptime_seconds_total", "counter", "Current uptime in seconds (*)", {}),
    "BusyWorkers": ("apache_workers", "gauge", "Apache worker statuses", {"state": "busy"}),
    "IdleWorkers": ("apache_workers", "gauge", "Apache worker statuses", {"state": "idle"}),
    "Processes": ("apache_processes", "gauge", "Apache process count", {"state": "all"}),
    "Stopping": ("apache_processes", "gauge", "Apache process count", {"state": "stopping"}),
    "ConnsTotal": ("apache_connections", "gauge", "Apache connection statuses", {"state": "total"}),
    "ConnsAsyncWriting": (
        "apache_connections", "gauge", "Apache connection statuses", {"state": "writing"}
    ),
    "ConnsAsyncKeepAlive": (
        "apache_connections", "gauge", "Apache connection statuses", {"state": "keepalive"}
    ),
    "ConnsAsyncClosing": (
        "apache_connections", "gauge", "Apache connection statuses", {"state": "closing"}
    ),
    "ParentServerConfigGeneration": (
        "apache_generation", "gauge", "Apache restart generation", {"type": "config"}
    ),
    "ParentServerMPMGeneration": (
        "apache_generation", "gauge", "Apache restart generation", {"type": "mpm"}
    ),
    "Load1": ("apache_load", "gauge", "Apache server load", {"interval": "1min"}),
    "Load5": ("apache_load", "gauge", "Apache server load", {"interval": "5min"}),
    "Load15": ("apache_load", "gauge", "Apache server load", {"interval": "15min"}),
}  # fmt: skip
APACHE_CPU = {  # summed into apache_cpu_time_ms_total{type}, in ms
    "CPUUser": "user",
    "CPUChildrenUser": "user",
    "CPUSystem": "system",
    "CPUChildrenSystem": "system",
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


def apache_version(server_version: str) -> float | None:
    """`Apache/2.4.57 (Debian)` → 2.04057, as apache_exporter encodes it."""
    match = re.search(r"/(\d+)\.(\d+)\.(\d+)", server_version)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return float(f"{major}.{minor:0>2}{patch:0>3}")


def parse_apache(text: str) -> list[Row]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    if not any(key in fields for key in ("Total Accesses", "Scoreboard", "BusyWorkers")):
        raise ValueError("not an Apache mod_status?auto page")
    rows = [
        Row(name, labels, float(fields[key]), kind, "", help_text)
        for key, (name, kind, help_text, labels) in APACHE_FIELDS.items()
        if key in fields
    ]
    if "CPULoad" not in fields and "Total Accesses" in fields:
        # mod_status leaves it out while no CPU time was used; apache_exporter says 0
        name, kind, help_text, _ = APACHE_FIELDS["CPULoad"]
        rows.append(Row(name, {}, 0.0, kind, "", help_text))
    if any(key in fields for key in APACHE_CPU):
        cpu = {"user": 0.0, "system": 0.0}
        for key, cpu_type in APACHE_CPU.items():
            cpu[cpu_type] += float(fields.get(key, 0))
        rows += [
            Row("apache_cpu_time_ms_total", {"type": t}, 1000 * v, "counter", "", "Apache CPU time")
            for t, v in cpu.items()
        ]
    if "Scoreboard" in fields:
        counts = dict.fromkeys(SCOREBOARD.values(), 0)
        for char in fields["Scoreboard"]:
            state = SCOREBOARD.get(char, char)
            counts[state] = counts.get(state, 0) + 1
        rows += [
            Row(
                "apache_scoreboard",
                {"state": s},
                float(n),
                "gauge",
                "",
                "Apache scoreboard statuses",
            )
            for s, n in counts.items()
        ]
    version = fields.get("ServerVersion", "UNKNOWN")
    number = apache_version(version)
    if number is not None:
        rows.append(Row("apache_version", {}, number, "gauge", "", "Apache server version"))
    info = {"version": version, "mpm": fields.get("ServerMPM", "UNKNOWN")}
    rows.append(Row("apache_info", info, 1.0, "gauge", "", "Apache version information"))
    rows.append(Row("apache_up", {}, 1.0, "gauge", "", "Could the apache server be reached"))
    return rows


# stub_status column → (name, kind, HELP): nginx-prometheus-exporter's; tengine adds
# request_time (ms, summed over requests).
NGINX_COLUMNS: dict[str, tuple[str, MetricKind, str]] = {
    "accepts": ("nginx_connections_accepted", "counter", "Accepted client connections"),
    "handled": ("nginx_connections_handled", "counter", "Handled client connections"),
    "requests": ("nginx_http_requests_total", "counter", "Total http requests"),
    "request_time": (
        "tengine_request_time_ms_total", "counter", "Time spent on requests, ms (tengine)"
    ),
}  # fmt: skip
NGINX_STATES: dict[str, tuple[str, str]] = {
    "Reading": (
        "nginx_connections_reading",
        "Connections where NGINX is reading the request header",
    ),
    "Writing": (
        "nginx_connections_writing",
        "Connections where NGINX is writing the response back to the client",
    ),
    "Waiting": ("nginx_connections_waiting", "Idle client connections"),
}
NGINX_ACTIVE = re.compile(r"Active connections:\s*(\d+)")
NGINX_STATE = re.compile(r"(Reading|Writing|Waiting):\s*(\d+)")


def parse_nginx(text: str) -> list[Row]:
    """nginx's and tengine's stub_status: the counters' names are the page's own header
    line (`server accepts handled requests [request_time]`)."""
    active = NGINX_ACTIVE.search(text)
    lines = [line.split() for line in text.splitlines()]
    header = next((i for i, words in enumerate(lines) if words[:1] == ["server"]), None)
    if active is None or header is None or header + 1 >= len(lines):
        raise ValueError("not an nginx stub_status page")
    columns, values = lines[header][1:], lines[header + 1]
    if len(columns) != len(values) or not all(v.isdigit() for v in values):
        raise ValueError("an nginx stub_status page whose counters do not match its header")
    rows = [
        Row("nginx_connections_active", {}, float(active.group(1)), "gauge", "",
            "Active client connections"),
    ]  # fmt: skip
    for column, value in zip(columns, values, strict=True):
        if column in NGINX_COLUMNS:
            name, kind, help_text = NGINX_COLUMNS[column]
            rows.append(Row(name, {}, float(value), kind, "", help_text))
    for state, value in NGINX_STATE.findall(text):
        name, help_text = NGINX_STATES[state]
        rows.append(Row(name, {}, float(value), "gauge", "", help_text))
    rows.append(Row("nginx_up", {}, 1.0, "gauge", "", "Status of the last metric scrape"))
    return rows


# Real per-second rates, from a counter's change between two scrapes of one target:
# rate name → (format, counter, scale, HELP). Absent on a target's first scrape and after
# its counter went back (a restart).
RATES: dict[str, tuple[str, str, float, str]] = {
    "apache_requests_per_second": (
        "apache", "apache_accesses_total", 1.0,
        "Requests per second since the previous scrape (from Total Accesses).",
    ),
    "apache_bytes_per_second": (
        "apache", "apache_sent_kilobytes_total", 1024.0,
        "Bytes sent per second since the previous scrape (from Total kBytes).",
    ),
    "nginx_http_requests_per_second": (
        "nginx", "nginx_http_requests_total", 1.0,
        "Requests per second since the previous scrape.",
    ),
}  # fmt: skip
# What a failed scrape of each format still says, as its exporter does.
DOWN = {
    "apache": Row("apache_up", {}, 0.0, "gauge", "", "Could the apache server be reached"),
    "nginx": Row("nginx_up", {}, 0.0, "gauge", "", "Status of the last metric scrape"),
}


PARSERS: dict[str, Callable[[str, str], list[Row]]] = {  # (body, Content-Type) → rows
    "prometheus": parse_prometheus,
    "apache": lambda text, _: parse_apache(text),
    "nginx": lambda text, _: parse_nginx(text),
}
# What Prometheus asks for: OpenMetrics first, then the text format.
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
DEFAULT_PATHS = {"prometheus": "/metrics", "apache": "/server-status?auto", "nginx": "/stub_status"}
