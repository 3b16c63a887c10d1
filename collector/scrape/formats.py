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
            rows.append(Row(name, {}, float(value) * scale, kind))
            seen = True
        elif key in ("BusyWorkers", "IdleWorkers"):
            state = "busy" if key == "BusyWorkers" else "idle"
            rows.append(Row("apache_workers", {"state": state}, float(value), "gauge"))
            seen = True
        elif key == "Scoreboard":
            for char, state in SCOREBOARD.items():
                rows.append(
                    Row("apache_scoreboard", {"state": state}, float(value.count(char)), "gauge")
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
        Row("nginx_connections_active", {}, active, "gauge"),
        Row("nginx_connections_accepted", {}, accepted, "counter"),
        Row("nginx_connections_handled", {}, handled, "counter"),
        Row("nginx_http_requests_total", {}, requests, "counter"),
        Row("nginx_connections_reading", {}, reading, "gauge"),
        Row("nginx_connections_writing", {}, writing, "gauge"),
        Row("nginx_connections_waiting", {}, waiting, "gauge"),
    ]


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
