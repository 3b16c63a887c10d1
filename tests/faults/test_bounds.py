"""Bounds that no label or datagram can break: a catastrophic regex cannot freeze the
loop, 60 KB tag values cannot grow memory without bound, intervals have a floor."""

from __future__ import annotations

import socket
import statistics
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import free_port, start_httpd
from tests.ebbflow_process import Ebbflow, wait_for
from tests.test_e2e import labelled

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def scrape_seconds(port: int) -> float:
    began = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        resp.read()
    return time.perf_counter() - began


def test_a_catastrophic_regex_never_freezes_the_process(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("a" * 28 + "!")  # 29 bytes: ^(a+)+$ backtracks 2^28 ways
    assert len((www / "index.html").read_bytes()) == 29
    port = free_port()
    start_httpd(run_container, f"{project}-server", www, port)
    run_container(
        f"{project}_web_1", "--network", "host",
        *labelled(project, "web", {
            "ebbflow.health.url": f"http://container:{port}/index.html",
            "ebbflow.health.body_regex": "^(a+)+$",
            "ebbflow.health.interval": "1",
            "ebbflow.heal.action": "none",
        }),
    )  # fmt: skip
    ebbflow.start()
    name = f'name="{project}_web_1"'

    def probe_success() -> list[str]:
        try:
            text = ebbflow.metrics()
        except OSError:
            return []
        return [
            line.rsplit(" ", 1)[1]
            for line in text.splitlines()
            if line.startswith("probe_success{") and name in line
        ]

    wait_for("a probe result", lambda: probe_success() != [], 30, ebbflow.assert_alive)
    took = []
    for _ in range(40):  # 8 s of scrapes while the probe runs every second
        took.append(scrape_seconds(ebbflow.port))
        time.sleep(0.2)
    assert max(took) < 0.1, (
        f"slowest /metrics {max(took):.3f}s, median {statistics.median(took):.4f}s"
    )
    assert probe_success() == ["0.0"]
    assert 'reason="body_mismatch"' in ebbflow.metrics()
    assert ebbflow.metric("ebbflow_probe_results_total") >= 8  # type: ignore[operator]
    assert ebbflow.stop() == 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


RSS_GROWTH_BOUND_MIB = 64  # README "Failure behaviour": 2,000 series of 60 KB tags


def test_60_kb_tag_values_are_cut_and_memory_stays_bounded(
    ebbflow: Ebbflow, tmp_path: Path
) -> None:
    udp_port = free_port()
    config = tmp_path / "ebbflow.yaml"
    config.write_text(f"inputs:\n  udp:\n    listen: 127.0.0.1:{udp_port}\n")
    ebbflow.start("--config", str(config))
    wait_for(
        "the UDP input",
        lambda: ebbflow.metric("ebbflow_udp_datagrams_total") == 0.0,
        30,
        ebbflow.assert_alive,
    )
    assert ebbflow.proc is not None
    before = rss_kib(ebbflow.proc.pid)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    try:
        for chunk in range(20):  # 2,000 datagrams of 60 KB, 100 at a time
            for i in range(100):
                n = chunk * 100 + i
                tag = (f"{n:06d}" * 10_000)[:60_000]  # unique per series
                sender.sendto(f"hostile,t={tag} v={n}i".encode(), ("127.0.0.1", udp_port))
                sent += 1
                time.sleep(0.001)
            wait_for(
                f"{sent} datagrams taken",
                lambda sent=sent: ebbflow.metric("ebbflow_udp_datagrams_total") == sent,
                30,
                ebbflow.assert_alive,
            )
    finally:
        sender.close()
    wait_for(
        "2000 series",
        lambda: ebbflow.metric("ebbflow_udp_series") == 2000.0,
        10,
        ebbflow.assert_alive,
    )
    assert ebbflow.metric("ebbflow_udp_labels_truncated_total") == 2000.0
    assert ebbflow.metric("ebbflow_udp_malformed_total") == 0.0
    body = ebbflow.metrics()
    after = rss_kib(ebbflow.proc.pid)
    growth_mib = (after - before) / 1024
    assert growth_mib < RSS_GROWTH_BOUND_MIB, f"RSS grew {growth_mib:.0f} MiB"
    assert len(body) < 8 * 1024 * 1024, f"/metrics is {len(body)} bytes"
    assert body.count("hostile_v{") == 2000
    assert ebbflow.stop() == 0


def test_a_probe_interval_under_the_floor_is_a_named_error(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow
) -> None:
    run_container(
        f"{project}_web_1", "--network", "none",
        *labelled(project, "web", {
            "ebbflow.health.url": "http://container:1/",
            "ebbflow.health.interval": "0.000001",
            "ebbflow.heal.action": "none",
        }),
    )  # fmt: skip
    ebbflow.start()
    wait_for(
        "the probe's config error",
        lambda: "must be at least 1s" in ebbflow.logs(),
        30,
        ebbflow.assert_alive,
    )
    assert ebbflow.metric("ebbflow_probes_active") == 0.0
    assert ebbflow.stop() == 0
