"""Probes against real containers: a busybox httpd on a loopback port, and exec in containers.

Probe carriers are host-network containers, so `container` in their probe URL is 127.0.0.1
and every probe stays on loopback.
"""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.probes import ProbeInput
from ebbflow.discovery import Inventory
from ebbflow.docker_api import DockerHandle
from ebbflow.model import Sample, SampleBatch
from ebbflow.nodes import Nodes

from ...conftest import free_port, start_httpd

pytestmark = pytest.mark.integration


def site(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<h1>all systems go</h1>\n")
    return www


async def test_probe_outcomes_and_reasons(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    port, dead_port = free_port(), free_port()
    start_httpd(run_container, f"{project}-server", site(tmp_path), port)
    fast = {"ebbflow.health.interval": "0.5"}
    carriers = {
        "up": {
            "aliyun.probe.url": f"http://container:{port}/index.html",
            "ebbflow.health.body_regex": "systems go",
        },
        "wrong-path": {"aliyun.probe.url": f"http://container:{port}/nope"},
        "stopped": {"aliyun.probe.url": f"http://container:{dead_port}/"},
        "tcp-up": {"aliyun.probe.url": f"tcp://container:{port}"},
        "body": {
            "aliyun.probe.url": f"http://container:{port}/index.html",
            "ebbflow.health.body_regex": "maintenance",
        },
        "slow-cmd": {"aliyun.probe.cmd": "sleep 5", "aliyun.probe.timeout_seconds": "1"},
        "cmd-ok": {"aliyun.probe.cmd": "test -f /etc/passwd"},
        "cmd-fail": {"aliyun.probe.cmd": "false"},
        "delayed": {
            "aliyun.probe.url": f"http://container:{port}/index.html",
            "aliyun.probe.initial_delay_seconds": "3",
        },
    }
    bus = Bus()
    results = bus.subscribe("results", SampleBatch, capacity=10_000)
    docker = DockerHandle()
    # The core's inventory alone feeds the probes: no containers input runs.
    inventory = Inventory(Nodes([docker]), bus, time.time)
    probes = ProbeInput(bus, Nodes([docker]), time.time, min_interval=0.5)
    tasks = [asyncio.create_task(inventory.run()), asyncio.create_task(probes.run())]
    started: dict[str, float] = {}
    try:
        await asyncio.wait_for(inventory.discoveries[0].synced.wait(), 20)
        for name, labels in carriers.items():
            args = [arg for k, v in {**fast, **labels}.items() for arg in ("--label", f"{k}={v}")]
            await asyncio.to_thread(run_container, f"{project}-{name}", "--network", "host", *args)
            started[f"{project}-{name}"] = time.time()
        first: dict[str, tuple[float, dict[str, Sample]]] = {}
        async with asyncio.timeout(30):
            while len(first) < len(carriers):
                batch = await results.get()
                assert isinstance(batch, SampleBatch)
                if not batch.source.startswith("probes/") or not batch.samples:
                    continue
                name = batch.samples[0].label("name")
                first.setdefault(name, (batch.timestamp, {s.name: s for s in batch.samples}))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await docker.close()

    def outcome(name: str) -> tuple[float, str]:
        samples = first[f"{project}-{name}"][1]
        success = samples["probe_success"]
        assert success.label("reason") == "", "probe_success keeps one label set"
        info = samples.get("ebbflow_probe_failure_info")
        assert (info is None) == (success.value == 1.0)
        return success.value, info.label("reason") if info else ""

    assert outcome("up") == (1.0, "")
    assert first[f"{project}-up"][1]["probe_http_status_code"].value == 200
    assert first[f"{project}-up"][1]["probe_duration_seconds"].value < 1
    assert outcome("tcp-up") == (1.0, "")
    assert outcome("wrong-path") == (0.0, "status_mismatch")
    assert first[f"{project}-wrong-path"][1]["probe_http_status_code"].value == 404
    assert outcome("stopped") == (0.0, "connection_refused")
    assert first[f"{project}-stopped"][1]["probe_http_status_code"].value == 0
    assert outcome("body") == (0.0, "body_mismatch")
    assert outcome("slow-cmd") == (0.0, "timeout")
    assert outcome("cmd-ok") == (1.0, "")
    assert outcome("cmd-fail") == (0.0, "exec_failed")
    assert outcome("delayed") == (1.0, "")
    # the initial delay is honoured: nothing before start + 3 s, others came well before
    delayed_at = first[f"{project}-delayed"][0]
    assert delayed_at >= started[f"{project}-delayed"] + 3 - 0.1
    assert first[f"{project}-up"][0] < started[f"{project}-up"] + 3
