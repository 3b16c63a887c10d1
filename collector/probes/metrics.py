"""A probe result as series: blackbox_exporter's names, HELP and values, plus ebbflow's own.

Every series of one target keeps one label set whatever the outcome (so `avg_over_time`
and `changes()` over `probe_success` mean what they mean for blackbox); why a probe failed
is its own series, `ebbflow_probe_failure_info{reason}`, present while the target fails.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping

from ebbflow.model import Sample, labels_of
from ebbflow.names import PROBE_SUCCESS

from .checks import PHASES, Address, HttpFacts, ProbeResult

FNV32_OFFSET, FNV32_PRIME = 0x811C9DC5, 0x01000193

# name → (HELP as blackbox_exporter 0.23 writes it, value)
ADDRESS: Mapping[str, tuple[str, Callable[[Address], float]]] = {
    "probe_dns_lookup_time_seconds": (
        "Returns the time taken for probe dns lookup in seconds",
        lambda a: a.dns_seconds,
    ),
    "probe_ip_protocol": (
        "Specifies whether probe ip protocol is IP4 or IP6",
        lambda a: ipaddress.ip_address(a.ip).version if a.ip else 0,
    ),
    "probe_ip_addr_hash": (
        "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
        lambda a: ip_hash(a.ip),
    ),
}
HTTP: Mapping[str, tuple[str, Callable[[HttpFacts], float]]] = {
    "probe_http_status_code": ("Response HTTP status code", lambda h: h.status_code),
    "probe_http_content_length": ("Length of http content response", lambda h: h.content_length),
    "probe_http_uncompressed_body_length": (
        "Length of uncompressed response body",
        lambda h: h.body_length,
    ),
    "probe_http_redirects": ("The number of redirects", lambda h: 0),  # never followed
    "probe_http_ssl": ("Indicates if SSL was used for the final redirect", lambda h: h.ssl),
    "probe_http_version": (
        "Returns the version of HTTP of the probe response",
        lambda h: h.version,
    ),
}
PHASE_HELP = "Duration of http request by phase, summed over all redirects"
LAST_MODIFIED_HELP = "Returns the Last-Modified HTTP response header in unixtime"
CERT_EXPIRY_HELP = "Returns last SSL chain expiry in unixtime"


def ip_hash(ip: str) -> float:
    """FNV-1a over the address's bytes (4 for IPv4), as blackbox hashes it."""
    if not ip:
        return 0.0
    value = FNV32_OFFSET
    for byte in ipaddress.ip_address(ip).packed:
        value = ((value ^ byte) * FNV32_PRIME) & 0xFFFFFFFF
    return float(value)


def probe_samples(
    base: Mapping[str, str], result: ProbeResult, healthy: bool, now: float
) -> tuple[Sample, ...]:
    labels = labels_of(base)

    def gauge(name: str, value: float, help_text: str, extra: Mapping[str, str] = {}) -> Sample:
        return Sample(
            name,
            float(value),
            labels_of({**base, **extra}) if extra else labels,
            now,
            "gauge",
            help_text,
        )

    samples = [
        gauge(PROBE_SUCCESS, result.success, "Displays whether or not the probe was a success"),
        gauge(
            "probe_duration_seconds",
            result.duration,
            "Returns how long the probe took to complete in seconds",
        ),
        gauge("ebbflow_probe_healthy", healthy, "Health after the failure/success thresholds."),
    ]
    if not result.success:
        samples.append(
            gauge(
                "ebbflow_probe_failure_info",
                1,
                "Why the target's last probe failed; present while it fails.",
                {"reason": result.reason},
            )
        )
    if result.address is not None:
        samples += [gauge(n, value(result.address), h) for n, (h, value) in ADDRESS.items()]
        failed_regex = result.http is not None and result.http.failed_due_to_regex
        samples.append(
            gauge(
                "probe_failed_due_to_regex", failed_regex, "Indicates if probe failed due to regex"
            )
        )
    if result.http is not None:
        http = result.http
        samples += [gauge(n, value(http), h) for n, (h, value) in HTTP.items()]
        samples += [
            gauge("probe_http_duration_seconds", http.phases[p], PHASE_HELP, {"phase": p})
            for p in PHASES
        ]
        if http.last_modified is not None:
            samples.append(
                gauge(
                    "probe_http_last_modified_timestamp_seconds",
                    http.last_modified,
                    LAST_MODIFIED_HELP,
                )
            )
        if http.cert_expiry is not None:
            samples.append(
                gauge("probe_ssl_earliest_cert_expiry", http.cert_expiry, CERT_EXPIRY_HELP)
            )
    return tuple(samples)
