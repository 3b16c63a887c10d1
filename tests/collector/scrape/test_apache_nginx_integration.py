"""Debian's apache2 (mod_status) and nginx (stub_status), started by the test on loopback
ports with their own configs (never as services) and stopped by pid, scraped through the
labels of host-network carrier containers: a counted number of requests moves the counters
by exactly that number, every apache_exporter and nginx-prometheus-exporter name is there,
and the per-second rates are real ones."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.scrape import ScrapeInput
from ebbflow.docker_api import DockerHandle
from ebbflow.model import Sample
from ebbflow.nodes import Nodes
from tests.conftest import free_port, served

pytestmark = pytest.mark.integration

REQUESTS = 25
APACHE_NAMES = {
    "apache_accesses_total", "apache_sent_kilobytes_total", "apache_duration_ms_total",
    "apache_cpu_time_ms_total", "apache_cpuload", "apache_uptime_seconds_total",
    "apache_workers", "apache_processes", "apache_connections", "apache_scoreboard",
    "apache_generation", "apache_load", "apache_info", "apache_version", "apache_up",
}  # fmt: skip
NGINX_NAMES = {
    "nginx_connections_active", "nginx_connections_accepted", "nginx_connections_handled",
    "nginx_connections_reading", "nginx_connections_writing", "nginx_connections_waiting",
    "nginx_http_requests_total", "nginx_up",
}  # fmt: skip


@pytest.fixture
def apache(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    modules = Path("/usr/lib/apache2/modules")
    config = tmp_path / "httpd.conf"
    config.write_text(
        f"ServerRoot {tmp_path}\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\n"
        f"PidFile {tmp_path}/httpd.pid\nErrorLog {tmp_path}/error.log\n"
        f"LoadModule mpm_event_module {modules}/mod_mpm_event.so\n"
        f"LoadModule authz_core_module {modules}/mod_authz_core.so\n"
        f"LoadModule status_module {modules}/mod_status.so\n"
        "User nobody\nGroup nogroup\nExtendedStatus On\n"
        "<Location /server-status>\n  SetHandler server-status\n  Require all granted\n"
        "</Location>\n"
    )
    argv = ["/usr/sbin/apache2", "-f", str(config), "-DFOREGROUND"]
    with served(argv, f"http://127.0.0.1:{port}/server-status?auto"):
        yield port


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    temps = "".join(
        f"  {kind}_temp_path {prefix}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = prefix / "nginx.conf"
    config.write_text(
        f"daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "worker_processes 1;\nevents { worker_connections 64; }\n"
        f"http {{\n  access_log off;\n{temps}"
        f"  server {{\n    listen 127.0.0.1:{port};\n"
        '    location / { return 200 "hi\\n"; }\n'
        "    location /stub_status { stub_status; }\n  }\n}\n"
    )
    argv = ["/usr/sbin/nginx", "-c", str(config), "-p", str(prefix)]
    with served(argv, f"http://127.0.0.1:{port}/stub_status"):
        yield port


def hit(port: int, path: str, times: int) -> None:
    for _ in range(times):  # bounded: exactly `times` requests, each on a new connection
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                r.read()
        except urllib.error.HTTPError:
            pass  # a 404 is still a request served and counted


def by_name(
    samples: list[Sample], name: str
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    mine = [s for s in samples if s.label("name") == name]
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for s in mine:
        extra = tuple((k, v) for k, v in s.labels if k in ("state", "type", "interval"))
        found.setdefault(s.name, {})[extra] = s.value
    return found


async def test_apache_and_nginx_counters_move_by_exactly_the_requests(
    apache: int, nginx: int, run_container: Callable[..., str], project: str
) -> None:
    for name, port, page_format in (("apache", apache, "apache"), ("nginx", nginx, "nginx")):
        run_container(
            f"{project}-{name}", "--network", "host",
            "--label", f"ebbflow.scrape.port={port}",
            "--label", f"ebbflow.scrape.format={page_format}",
        )  # fmt: skip
    docker = DockerHandle()
    try:
        scrape = ScrapeInput(Bus(), Nodes([docker]), 5, 5, time.time)
        before = await scrape.collect_once()
        hit(apache, "/nothing-here", REQUESTS)
        hit(nginx, "/", REQUESTS)
        after = await scrape.collect_once()
    finally:
        await docker.close()

    a0, a1 = by_name(before, f"{project}-apache"), by_name(after, f"{project}-apache")
    assert set(a1) >= APACHE_NAMES, APACHE_NAMES - set(a1)
    # the requests, and the first scrape (counted once it finished)
    accesses = a1["apache_accesses_total"][()] - a0["apache_accesses_total"][()]
    assert accesses == REQUESTS + 1
    assert {k[0][1] for k in a1["apache_connections"]} == {
        "total",
        "writing",
        "keepalive",
        "closing",
    }
    assert a1["apache_up"][()] == 1 and a1["apache_requests_per_second"][()] > 0
    assert "apache_requests_per_second" not in a0  # no rate from one scrape

    n0, n1 = by_name(before, f"{project}-nginx"), by_name(after, f"{project}-nginx")
    assert set(n1) >= NGINX_NAMES, NGINX_NAMES - set(n1)
    # the requests, and the second scrape's own (stub_status counts the one it answers)
    requests = n1["nginx_http_requests_total"][()] - n0["nginx_http_requests_total"][()]
    assert requests == REQUESTS + 1
    accepted = n1["nginx_connections_accepted"][()] - n0["nginx_connections_accepted"][()]
    assert accepted == REQUESTS + 1  # one connection each
    assert n1["nginx_connections_handled"][()] - n0["nginx_connections_handled"][()] == accepted
    assert n1["nginx_http_requests_per_second"][()] > 0
