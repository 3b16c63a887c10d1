"""The three kinds of probe: HTTP, TCP connect, and a command run in the container.

Each returns a `ProbeResult` and never raises: a failure is a result with a reason. URL and
TCP results also carry what blackbox_exporter measures for the same probe (DNS time, the
address reached, the HTTP phases and response facts), so its dashboards read ours.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiodocker
import aiohttp

from .spec import ProbeSpec, Reason

MAX_BODY = 1 << 20  # the body regex sees at most the first MiB (the length counts all of it)
PHASES = ("resolve", "connect", "tls", "processing", "transfer")


@dataclass(frozen=True, slots=True)
class Address:
    """Where a URL or TCP probe went: how long the name took to resolve, and to what."""

    dns_seconds: float = 0.0
    ip: str = ""  # empty when the name did not resolve


@dataclass(frozen=True, slots=True)
class HttpFacts:
    """blackbox_exporter's HTTP facts; zeros when there was no answer, as blackbox has."""

    status_code: int = 0
    version: float = 0.0
    content_length: int = 0  # the Content-Length header; -1 when the answer had none
    body_length: int = 0  # bytes of body after decompression
    ssl: bool = False
    phases: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    cert_expiry: float | None = None  # notAfter of the server's certificate, https only
    last_modified: float | None = None  # the Last-Modified header, when the answer had one
    failed_due_to_regex: bool = False


@dataclass(frozen=True, slots=True)
class ProbeResult:
    success: bool
    duration: float
    reason: Reason = ""
    detail: str = ""
    address: Address | None = None  # URL and TCP probes
    http: HttpFacts | None = None  # HTTP probes

    @property
    def status_code(self) -> int | None:
        return self.http.status_code if self.http is not None else None


@dataclass(slots=True)
class Timeline:
    """One HTTP request's instants (perf_counter) and the peer it reached, filled in by the
    hooks of `timing_trace` through aiohttp's `trace_request_ctx`."""

    marks: dict[str, float] = field(default_factory=dict)
    ip: str = ""
    cert_expiry: float | None = None

    def span(self, first: str, last: str) -> float:
        if first in self.marks and last in self.marks:
            return max(0.0, self.marks[last] - self.marks[first])
        return 0.0

    @property
    def dns_seconds(self) -> float:
        return self.span("dns_resolvehost_start", "dns_resolvehost_end")

    def phases(self, end: float) -> dict[str, float]:
        """blackbox's split: resolve, connect (TCP and, for https, the TLS handshake, which
        aiohttp does not time apart: `tls` stays 0), processing (to the answer's headers),
        transfer (the body)."""
        self.marks["end"] = end
        return {
            "resolve": self.dns_seconds,
            "connect": max(
                0.0,
                self.span("connection_create_start", "connection_create_end") - self.dns_seconds,
            ),
            "tls": 0.0,
            "processing": self.span("connection_create_end", "request_end"),
            "transfer": self.span("request_end", "end"),
        }


def timing_trace() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    for event in (
        "dns_resolvehost_start",
        "dns_resolvehost_end",
        "connection_create_start",
        "connection_create_end",
        "request_end",
    ):

        async def stamp(_: Any, ctx: SimpleNamespace, params: Any, event: str = event) -> None:
            timeline = ctx.trace_request_ctx
            if isinstance(timeline, Timeline):
                timeline.marks[event] = time.perf_counter()
                if event == "request_end":  # the connection is still the response's
                    timeline.ip, timeline.cert_expiry = _peer(params.response)

        getattr(config, "on_" + event).append(stamp)
    return config


def _peer(resp: aiohttp.ClientResponse) -> tuple[str, float | None]:
    """The address answered from, and the certificate's expiry on https."""
    transport = resp.connection.transport if resp.connection is not None else None
    if transport is None:
        return "", None
    peer = transport.get_extra_info("peername")
    cert = transport.get_extra_info("peercert")
    expiry = ssl.cert_time_to_seconds(cert["notAfter"]) if cert and "notAfter" in cert else None
    return (str(peer[0]) if peer else ""), expiry


async def http_probe(session: aiohttp.ClientSession, spec: ProbeSpec, url: str) -> ProbeResult:
    timeline = Timeline()
    started = time.perf_counter()
    answer: dict[str, Any] = {}  # HttpFacts fields, as far as the answer got
    body = bytearray()
    try:
        async with (
            asyncio.timeout(spec.timeout),
            session.get(url, allow_redirects=False, trace_request_ctx=timeline) as resp,
        ):
            version = resp.version
            answer["status_code"] = resp.status
            answer["version"] = version.major + version.minor / 10 if version else 0.0
            length = resp.content_length
            answer["content_length"] = length if length is not None else -1
            answer["last_modified"] = _http_date(resp.headers.get("Last-Modified"))
            body_length = 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                body_length += len(chunk)
                if len(body) < MAX_BODY:
                    body += chunk[: MAX_BODY - len(body)]
            answer["body_length"] = body_length
    except TimeoutError:
        failure: tuple[Reason, str] = ("timeout", f"no answer in {spec.timeout:g}s")
    except aiohttp.ClientConnectorError as err:
        failure = ("connection_refused", str(err))
    except (aiohttp.ClientError, OSError) as err:
        failure = ("error", repr(err))
    else:
        failure = ("", "")
        status = answer["status_code"]
        if not spec.status_ok(status):
            failure = ("status_mismatch", f"status {status}")
        elif not spec.body_matches(body.decode(errors="replace")):
            failure = ("body_mismatch", f"body does not match {spec.body_regex!r}")
    end = time.perf_counter()
    if failure[0] in ("timeout", "connection_refused", "error"):
        answer = {}  # no whole answer: the status and lengths stay 0, as blackbox has them
    host = urlsplit(url).hostname or ""
    http = HttpFacts(
        **answer,
        ssl=urlsplit(url).scheme == "https" and bool(timeline.ip),
        phases=timeline.phases(end),
        cert_expiry=timeline.cert_expiry,
        failed_due_to_regex=failure[0] == "body_mismatch",
    )
    address = Address(timeline.dns_seconds, timeline.ip or (host if _is_ip(host) else ""))
    return ProbeResult(not failure[0], end - started, failure[0], failure[1], address, http)


def _http_date(text: str | None) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(text).timestamp() if text else None
    except (TypeError, ValueError):
        return None  # a malformed header: as blackbox, no series


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def tcp_probe(spec: ProbeSpec, url: str) -> ProbeResult:
    parts = urlsplit(url)
    started = time.perf_counter()
    address = Address()
    try:
        async with asyncio.timeout(spec.timeout):
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port, type=socket.SOCK_STREAM
            )
            ip = str(infos[0][4][0])
            address = Address(time.perf_counter() - started, ip)
            _, writer = await asyncio.open_connection(ip, parts.port)
        writer.close()
        await writer.wait_closed()
    except TimeoutError:
        detail = f"no connection in {spec.timeout:g}s"
        return ProbeResult(False, time.perf_counter() - started, "timeout", detail, address)
    except ConnectionRefusedError as err:
        duration = time.perf_counter() - started
        return ProbeResult(False, duration, "connection_refused", str(err), address)
    except OSError as err:
        return ProbeResult(False, time.perf_counter() - started, "error", repr(err), address)
    return ProbeResult(True, time.perf_counter() - started, address=address)


async def cmd_probe(docker: aiodocker.Docker, spec: ProbeSpec, container_id: str) -> ProbeResult:
    """Exit code 0 is success. A command still running at the timeout is a timeout (the
    engine has no call to kill an exec; the process is left to finish on its own)."""
    assert spec.cmd is not None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout):
            container = docker.containers.container(container_id)
            execution = await container.exec(list(spec.cmd), stdout=True, stderr=True)
            async with execution.start(detach=False) as stream:
                while await stream.read_out() is not None:
                    pass
            exit_code = (await execution.inspect())["ExitCode"]
    except TimeoutError:
        return ProbeResult(
            False,
            time.perf_counter() - started,
            "timeout",
            detail=f"still running after {spec.timeout:g}s",
        )
    except (aiodocker.DockerError, aiohttp.ClientError, OSError) as err:
        return ProbeResult(False, time.perf_counter() - started, "exec_failed", detail=repr(err))
    duration = time.perf_counter() - started
    if exit_code != 0:
        return ProbeResult(False, duration, "exec_failed", detail=f"exit code {exit_code}")
    return ProbeResult(True, duration)
