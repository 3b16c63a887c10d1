"""The operator reaches the running instance: a local control socket beside the state file.

`ebbflow pause|resume|forget SERVICE` and `ebbflow status` connect to the socket of the
instance that runs on the same state file; the instance records the word in its state and
announces it on the bus at once (it takes effect within a second, in fact at once), and
the command says that a running instance took it. With no instance running there, the
command writes the state file itself, and says it is taken at the next start.

The socket is a unix socket only its owner may use (mode 0600): `<state>.sock`, or, when
that path is too long for a unix socket, one under the temporary directory named after the
state file's path. Requests and answers are one JSON line each, bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("ebbflow.control")

MAX_REQUEST = 4096  # bytes of one request line
UNIX_PATH_MAX = 100  # sun_path is 108 bytes; leave room
TIMEOUT = 5.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def socket_path(state: Path) -> Path:
    """Where the instance running on this state file listens."""
    beside = Path(f"{state.resolve()}.sock")
    if len(str(beside)) <= UNIX_PATH_MAX:
        return beside
    digest = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ebbflow-{digest}.sock"


class ControlServer:
    """The instance's side: one request a connection, answered by `handler`."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.requests = 0

    async def serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket() and not _answers(self.path):
                self.path.unlink()  # left by an instance that was killed
        old_mask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            server = await asyncio.start_unix_server(self._connection, path=str(self.path))
        finally:
            os.umask(old_mask)
        log.info("control socket at %s", self.path)
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                line = await reader.readline()
                if len(line) > MAX_REQUEST or not line.endswith(b"\n"):
                    answer: dict[str, Any] = {"ok": False, "error": "request too long or cut"}
                else:
                    self.requests += 1
                    answer = await self._answer(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (TimeoutError, ConnectionError, ValueError) as err:
            log.debug("control connection dropped: %s", err)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError as err:
            return {"ok": False, "error": f"not a request: {err}"}
        try:
            return await self.handler(request)
        except Exception as err:  # one request's failure, never the server's
            log.exception("control request %.200r failed", request)
            return {"ok": False, "error": f"{type(err).__name__}: {err}"}


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def ask(state: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The running instance's answer, or None when none runs on this state file."""
    path = socket_path(state)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(TIMEOUT)
        try:
            conn.connect(str(path))
        except OSError:
            return None  # no socket, or a stale one: no instance runs there
        conn.sendall(json.dumps(request).encode() + b"\n")
        answer = bytearray()
        while not answer.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    result = json.loads(answer) if answer else {"ok": False, "error": "no answer"}
    return result if isinstance(result, dict) else {"ok": False, "error": "not an answer"}
