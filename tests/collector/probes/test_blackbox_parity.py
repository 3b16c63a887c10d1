"""Beside the real blackbox_exporter (Debian's `prometheus-blackbox-exporter`, started by the
test on a loopback port with its own config), probing the same loopback targets: an up page,
a 404, a closed port, a body-regex failure, and TCP up and closed. Every series blackbox
emits, ebbflow emits under the same name, extra label names, TYPE and HELP, with the same
value (exact for the facts, within a tolerance for the timings)."""

from __future__ import annotations

import shutil
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from ebbflow.collector.probes.checks import ProbeResult, http_probe, tcp_probe, timing_trace
from ebbflow.collector.probes.metrics import probe_samples
from ebbflow.collector.probes.spec import ProbeSpec
from tests.conftest import free_port, served

pytestmark = pytest.mark.integration

BASE = {"name": "target", "probe": "http"}  # the identity labels ebbflow adds per target
TIMINGS = ("probe_duration_seconds", "probe_dns_lookup_time_seconds", "probe_http_duration_seconds")
TIMING_TOLERANCE = 0.25  # seconds; loopback probes take about a millisecond on both sides

BLACKBOX_CONFIG = """
modules:
  http:
    prober: http
    timeout: 2s
    http: {preferred_ip_protocol: ip4}
  http_regex:
    prober: http
    timeout: 2s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_not_matches_regexp: [maintenance]
  tcp:
    prober: tcp
    timeout: 2s
    tcp: {preferred_ip_protocol: ip4}
"""

Family = dict[frozenset[tuple[str, str]], float]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "index.html").write_text("<h1>all systems go</h1>\n")
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with served(argv, f"http://127.0.0.1:{port}/index.html", cwd=tmp_path):
        yield port


@pytest.fixture
def blackbox(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus-blackbox-exporter")
    assert binary, "scripts/test installs prometheus-blackbox-exporter"
    config = tmp_path / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    with served(argv, f"http://127.0.0.1:{port}/-/healthy"):
        yield f"http://127.0.0.1:{port}"


def blackbox_probe(
    url: str, module: str, target: str
) -> tuple[dict[str, Family], dict[str, tuple[str, str]]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/probe?module={module}&target={target}", timeout=5) as r:
        text = r.read().decode()
    families: dict[str, Family] = {}
    meta: dict[str, tuple[str, str]] = {}
    for family in text_string_to_metric_families(text):
        meta[family.name] = (family.type, family.documentation)
        for s in family.samples:
            families.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return families, meta


def ours(result: ProbeResult) -> tuple[dict[str, Family], dict[str, tuple[str, str]]]:
    families: dict[str, Family] = {}
    meta: dict[str, tuple[str, str]] = {}
    for s in probe_samples(BASE, result, True, time.time()):
        if s.name.startswith("ebbflow_"):
            continue
        extra = frozenset((k, v) for k, v in s.labels if k not in BASE)
        families.setdefault(s.name, {})[extra] = s.value
        meta[s.name] = (s.kind, s.help)
    return families, meta


async def probe(kind: str, target: str, regex: str | None = None) -> ProbeResult:
    spec = ProbeSpec(url=target, timeout=2, body_regex=regex)
    if kind == "tcp":
        return await tcp_probe(spec, target)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True, use_dns_cache=False),
        trace_configs=[timing_trace()],
    ) as session:
        return await http_probe(session, spec, target)


@pytest.mark.parametrize(
    ("case", "module", "path", "success"),
    [
        ("up", "http", "/index.html", 1),
        ("404", "http", "/nope", 0),
        ("closed", "http", "/", 0),
        ("regex", "http_regex", "/index.html", 0),
        ("tcp up", "tcp", "", 1),
        ("tcp closed", "tcp", "", 0),
    ],
)
async def test_every_blackbox_series_with_its_value(
    site: int, blackbox: str, case: str, module: str, path: str, success: int
) -> None:
    port = free_port() if "closed" in case else site
    if module == "tcp":
        theirs_target, our_target = f"127.0.0.1:{port}", f"tcp://127.0.0.1:{port}"
    else:
        theirs_target = our_target = f"http://127.0.0.1:{port}{path}"
    theirs, their_meta = blackbox_probe(blackbox, module, theirs_target)
    result = await probe(
        "tcp" if module == "tcp" else "http",
        our_target,
        "maintenance" if module == "http_regex" else None,
    )
    mine, my_meta = ours(result)

    assert sorted(mine) == sorted(theirs)
    assert my_meta == their_meta  # TYPE and HELP
    assert theirs["probe_success"] == {frozenset(): success}
    for name, family in theirs.items():
        assert set(mine[name]) == set(family), name  # the same extra label sets
        for labels, value in family.items():
            if name in TIMINGS:
                assert abs(mine[name][labels] - value) < TIMING_TOLERANCE, (name, labels)
            else:
                assert mine[name][labels] == value, (name, labels)
    if case == "up":
        assert theirs["probe_http_status_code"] == {frozenset(): 200}
        assert theirs["probe_http_uncompressed_body_length"] == {frozenset(): 24}
    if case == "closed":
        assert mine["probe_http_status_code"] == {frozenset(): 0}


async def test_the_failure_reason_is_its_own_series_and_probe_success_keeps_its_labels(
    site: int,
) -> None:
    up = await probe("http", f"http://127.0.0.1:{site}/index.html")
    down = await probe("http", f"http://127.0.0.1:{site}/nope")
    by_name = {
        outcome: {s.name: s for s in probe_samples(BASE, r, True, 0.0)}
        for outcome, r in (("up", up), ("down", down))
    }
    assert by_name["up"]["probe_success"].labels == by_name["down"]["probe_success"].labels
    assert "ebbflow_probe_failure_info" not in by_name["up"]
    info = by_name["down"]["ebbflow_probe_failure_info"]
    assert (info.value, info.label("reason")) == (1.0, "status_mismatch")
