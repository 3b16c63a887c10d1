"""The fault-injection harness every fault test uses.

- `DockerProxy`: a unix socket in front of a real engine that passes through, or hangs,
  resets, slows down, truncates, answers 500, or pushes a huge event line.
- `StateDir`: the state file on a small tmpfs of its own, so it can be deleted, made
  read-only (the mount remounted ro: even open descriptors stop writing), filled, and
  corrupted; unmounted at the end.
- `HostileServer`: an HTTP server on loopback answering with a huge body, an endless body,
  100k series, a 1 byte/s drip, or invalid UTF-8; it counts what it was asked.
- `HostileProcess`: one such server in a process of its own, for a target whose request
  times are measured: the servers in this process, writing hundreds of MiB, hold its GIL.
- `rss_mib`: a process's resident memory.

Each runs in this process (but `HostileProcess`), on loopback or in the test's own
directory, and is stopped by the test that made it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROXY_MODES = ("pass", "hang", "reset", "slow", "truncate", "error500", "huge_event")


class DockerProxy:
    """Listens on `path`; forwards each connection to the engine at `upstream`."""

    def __init__(self, path: Path, upstream: str) -> None:
        self.path = path
        self.upstream = upstream
        self.mode = "pass"
        self.connections = 0
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(128)
        self._server.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def set(self, mode: str) -> None:
        """A new mode for every request from now on: open connections go quiet (hang) or
        are cut (the other faults), so pooled keep-alive connections cannot slip past."""
        assert mode in PROXY_MODES, mode
        self.mode = mode
        if mode in ("reset", "error500", "truncate", "slow"):
            held, self._held = self._held, []
            for conn in held:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    conn.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        mode = self.mode
        if mode == "reset":
            client.close()
            return
        if mode == "hang":
            self._held.append(client)  # accepted, never answered
            return
        if mode == "error500":
            client.recv(65536)
            body = b'{"message":"injected failure"}'
            client.sendall(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            client.close()
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.upstream)
        except OSError:
            client.close()
            return
        self._held += [client, upstream]
        stream: dict[str, bool] = {"events": False}
        threading.Thread(
            target=self._pipe, args=(client, upstream, False, stream), daemon=True
        ).start()
        self._pipe(upstream, client, True, stream)

    def _pipe(
        self, source: socket.socket, target: socket.socket, answers: bool, stream: dict[str, bool]
    ) -> None:
        sent = 0
        injected = False
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if not answers and b"/events" in data.split(b"\r\n", 1)[0]:
                    stream["events"] = True
                mode = self.mode
                if answers and mode == "hang":
                    continue  # swallowed: the client waits forever
                if answers and mode == "slow":
                    time.sleep(0.5)
                if answers and mode == "truncate" and sent + len(data) > 512:
                    target.sendall(data[: max(0, 512 - sent)])
                    break
                if answers and mode == "huge_event" and stream["events"] and sent and not injected:
                    injected = True  # one chunk of its own, before the next real one
                    line = b'{"status":"start","id":"' + b"f" * 64 + b'","Actor":{"Attributes":'
                    line += b'{"huge":"' + b"x" * 2_000_000 + b'"}}}\n'
                    target.sendall(b"%x\r\n%s\r\n" % (len(line), line))
                target.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class StateDir:
    """The state file's folder, made to fail: deleted, read-only (the file and its
    write-ahead log made immutable: even open descriptors stop writing, as on a disk
    remounted read-only), full (on a small tmpfs of its own), corrupt."""

    def __init__(self, path: Path, size: str | None = None) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.mounted = size is not None
        if self.mounted:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           check=True, capture_output=True)  # fmt: skip
        self.state = path / "state.db"
        self._immutable: list[Path] = []

    def delete(self) -> None:
        self.state.unlink()

    def read_only(self) -> None:
        # Not the -shm file: it is mapped into memory, and an immutable mapping is a SIGBUS.
        self._immutable = [p for p in (self.state, self.path / "state.db-wal") if p.exists()]
        subprocess.run(["chattr", "+i", *map(str, self._immutable)], check=True)

    def writable(self) -> None:
        if self._immutable:
            subprocess.run(["chattr", "-i", *map(str, self._immutable)], check=True)
            self._immutable = []

    def fill(self) -> None:
        """Every free byte taken: the next write that needs a page fails (ENOSPC)."""
        assert self.mounted, "a full disk needs the tmpfs"
        with open(self.path / "filler", "wb") as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()

    def unfill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / "filler").unlink()

    def corrupt(self) -> None:
        data = bytearray(self.state.read_bytes())
        data[:100] = b"\xde\xad" * 50  # the header: sqlite no longer knows it
        self.state.write_bytes(bytes(data))

    def close(self) -> None:
        self.writable()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@contextlib.contextmanager
def state_dir(path: Path, size: str | None = None) -> Iterator[StateDir]:
    made = StateDir(path, size)
    try:
        yield made
    finally:
        made.close()


HOSTILE = ("huge", "endless", "series", "drip", "invalid_utf8", "good")


class HostileServer:
    """An app endpoint on 127.0.0.1:`port` that answers as `kind` says."""

    def __init__(self, port: int, kind: str, host: str = "127.0.0.1", echo: bool = False) -> None:
        assert kind in HOSTILE, kind
        self.kind = kind
        self.requests = 0
        self.times: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests += 1
                outer.times.append(time.monotonic())
                if echo:
                    print(outer.times[-1], flush=True)
                with contextlib.suppress(OSError):
                    outer.answer(self)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; version=0.0.4")
        if self.kind == "huge":
            size = 200 * 1024 * 1024
            handler.send_header("Content-Length", str(size))
            handler.end_headers()
            line = b"# " + b"x" * 1021 + b"\n"
            for _ in range(size // len(line)):
                handler.wfile.write(line)
        elif self.kind == "endless":
            handler.end_headers()
            line = b"# " + b"x" * 65533 + b"\n"
            while True:
                handler.wfile.write(line)
        elif self.kind == "series":
            body = b"".join(b"s_%d 1\n" % n for n in range(100_000))
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        elif self.kind == "drip":
            handler.end_headers()
            for _ in range(600):
                handler.wfile.write(b"#")
                handler.wfile.flush()
                time.sleep(1)
        elif self.kind == "invalid_utf8":
            body = b'bad_metric{label="\xff\xfe"} 1\n' + b"\xff" * 5_000_000
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        else:
            body = b"# TYPE good_total counter\ngood_total 1\n"
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HostileProcess:
    """A `HostileServer` in a process of its own; `times` (CLOCK_MONOTONIC, the same in
    every process) are known after `close`."""

    def __init__(self, port: int, kind: str) -> None:
        self.times: list[float] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.harness", kind, str(port)],
            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the {kind} server on port {port} did not start")
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            out, _ = self.proc.communicate(timeout=10)
            self.times = [float(line) for line in out.split()]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def create_container(name: str, image: str, labels: dict[str, str], cmd: list[str],
                     sock: str = "/var/run/docker.sock") -> str:  # fmt: skip
    """A container made through the API itself: labels of any size (the CLI caps a label
    file's line at 64 KiB)."""
    conn = _UnixHTTPConnection(sock)
    body = json.dumps({"Image": image, "Cmd": cmd, "Labels": labels,
                       "HostConfig": {"NetworkMode": "none"}})  # fmt: skip
    conn.request("POST", f"/containers/create?name={name}", body,
                 {"Content-Type": "application/json"})  # fmt: skip
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    if answer.status != 201:
        raise RuntimeError(f"create {name}: {answer.status} {data[:300]!r}")
    return str(json.loads(data)["Id"])


if __name__ == "__main__":  # python -m tests.faults.harness KIND PORT: see HostileProcess
    HostileServer(int(sys.argv[2]), sys.argv[1], echo=True).thread.join()
