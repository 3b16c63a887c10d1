"""The three kinds of probe: HTTP, TCP connect, and a command run in the container.

Each returns a `ProbeResult` and never raises: a failure is a result with a reason.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiodocker
import aiohttp

from .spec import ProbeSpec, Reason

MAX_BODY = 1 << 20  # the body regex sees at most the first MiB


@dataclass(frozen=True, slots=True)
class ProbeResult:
    success: bool
    duration: float
    reason: Reason = ""
    status_code: int | None = None
    detail: str = ""


async def http_probe(session: aiohttp.ClientSession, spec: ProbeSpec, url: str) -> ProbeResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout), session.get(url, allow_redirects=False) as resp:
            body = await resp.content.read(MAX_BODY) if spec.body_regex else b""
            status = resp.status
    except TimeoutError:
        return ProbeResult(
            False,
            time.perf_counter() - started,
            "timeout",
            detail=f"no answer in {spec.timeout:g}s",
        )
    except aiohttp.ClientConnectorError as err:
        return ProbeResult(
            False, time.perf_counter() - started, "connection_refused", detail=str(err)
        )
    except (aiohttp.ClientError, OSError) as err:
        return ProbeResult(False, time.perf_counter() - started, "error", detail=repr(err))
    duration = time.perf_counter() - started
    if not spec.status_ok(status):
        return ProbeResult(False, duration, "status_mismatch", status, f"status {status}")
    if not spec.body_matches(body.decode(errors="replace")):
        return ProbeResult(
            False, duration, "body_mismatch", status, f"body does not match {spec.body_regex!r}"
        )
    return ProbeResult(True, duration, "", status)


async def tcp_probe(spec: ProbeSpec, url: str) -> ProbeResult:
    parts = urlsplit(url)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout):
            _, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.close()
        await writer.wait_closed()
    except TimeoutError:
        return ProbeResult(
            False,
            time.perf_counter() - started,
            "timeout",
            detail=f"no connection in {spec.timeout:g}s",
        )
    except ConnectionRefusedError as err:
        return ProbeResult(
            False, time.perf_counter() - started, "connection_refused", detail=str(err)
        )
    except OSError as err:
        return ProbeResult(False, time.perf_counter() - started, "error", detail=repr(err))
    return ProbeResult(True, time.perf_counter() - started)


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
