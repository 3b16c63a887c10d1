"""`ebbflow healthcheck`, the image's HEALTHCHECK: where it asks, and what it answers when
the instance serves, is gone, or hangs."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebbflow.cli.health import health_url
from ebbflow.config import ConfigError, load_config


def url_for(outputs: dict[str, object]) -> str:
    return health_url(load_config(environ={}, overrides={"outputs": outputs}), "/healthz")


def test_it_asks_where_the_config_serves() -> None:
    assert url_for({}) == "http://127.0.0.1:9781/healthz"  # the default output, its default
    assert url_for({"prometheus": {"listen": "0.0.0.0:9782"}}) == "http://127.0.0.1:9782/healthz"
    assert url_for({"prometheus": {"listen": "[::]:9782"}}) == "http://127.0.0.1:9782/healthz"
    assert url_for({"prometheus": {"listen": "[::1]:9782"}}) == "http://[::1]:9782/healthz"
    assert url_for({"prometheus": {"listen": "10.0.0.5:80"}}) == "http://10.0.0.5:80/healthz"


def test_a_config_with_nothing_to_ask_is_a_named_error() -> None:
    with pytest.raises(ConfigError, match=r"outputs\.prometheus is off"):
        url_for({"prometheus": False})
    with pytest.raises(ConfigError, match="port 0"):
        url_for({"prometheus": {"listen": "127.0.0.1:0"}})


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}' if self.path == "/healthz" else b'{"status": "not ready"}'
        self.send_response(200 if self.path == "/healthz" else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def healthcheck(port: int, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """As the image runs it: the config found through $EBBFLOW_CONFIG."""
    config = tmp_path / "ebbflow.yaml"
    config.write_text(f"outputs: {{prometheus: {{listen: '0.0.0.0:{port}'}}}}\n")
    return subprocess.run(
        [sys.executable, "-m", "ebbflow", "healthcheck", *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "EBBFLOW_CONFIG": str(config)},
    )  # fmt: skip


def test_serving_is_healthy_and_not_ready_is_named(server: int, tmp_path: Path) -> None:
    ok = healthcheck(server, tmp_path)
    assert (ok.returncode, ok.stdout.strip()) == (
        0, f'ok: http://127.0.0.1:{server}/healthz: {{"status": "ok"}}',
    ), ok.stderr  # fmt: skip
    ready = healthcheck(server, tmp_path, "--ready")
    assert ready.returncode == 1
    assert "HTTP 503" in ready.stderr and "not ready" in ready.stderr


def test_gone_or_hung_is_unhealthy_within_the_deadline(tmp_path: Path) -> None:
    with socket.socket() as hung:  # accepts connections (the backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(4)
        port = hung.getsockname()[1]
        started = time.monotonic()
        out = healthcheck(port, tmp_path, "--timeout", "1")
        took = time.monotonic() - started
    assert out.returncode == 1 and "timed out" in out.stderr, out.stderr
    assert took < 30  # the deadline held (a hang would run into the 60 s of subprocess.run)
    gone = healthcheck(port, tmp_path)  # nothing listens there now
    assert gone.returncode == 1 and "unhealthy" in gone.stderr and "refused" in gone.stderr
