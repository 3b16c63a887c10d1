"""Beside the real node_exporter (Debian's `prometheus-node-exporter`, started by the test
on a loopback port with only the collectors compared here): every meminfo field under the
same name and HELP, and filesystem and memory values as node_exporter computes them."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.node import NodeConfig, NodeInput
from tests.conftest import free_port

pytestmark = pytest.mark.integration

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_exposition(text: str) -> tuple[Series, dict[str, str]]:
    """Values by (name, labels) and HELP by name, from the text format."""
    from prometheus_client.parser import text_string_to_metric_families

    values: Series = {}
    helps: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        helps[family.name] = family.documentation
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values, helps


@pytest.fixture
def node_exporter() -> Iterator[str]:
    binary = shutil.which("prometheus-node-exporter")
    assert binary, "scripts/test installs prometheus-node-exporter"
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.meminfo",
            "--collector.filesystem",
            "--collector.loadavg",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "no node_exporter"
                time.sleep(0.1)
        yield url
    finally:
        proc.kill()  # by its pid: ours alone
        proc.wait(10)


def ours() -> tuple[Series, dict[str, str]]:
    node = NodeInput(Bus(), NodeConfig(), 1.0, time.time)
    values: Series = {}
    helps: dict[str, str] = {}
    for s in node.read():
        labels = frozenset((k, v) for k, v in s.labels if k != "node")
        values[(s.name, labels)] = s.value
        helps[s.name] = s.help
    return values, helps


def test_meminfo_and_filesystem_match_node_exporter(node_exporter: str) -> None:
    theirs, their_help = parse_exposition(
        urllib.request.urlopen(node_exporter, timeout=5).read().decode()
    )
    mine, my_help = ours()
    memory = {name for name, _ in theirs if name.startswith("node_memory_")}
    assert memory == {name for name, _ in mine if name.startswith("node_memory_")}
    assert len(memory) > 40  # every /proc/meminfo field, not a handful
    for name in memory | {"node_load1", "node_load5", "node_load15"}:
        assert my_help[name] == their_help[name], name
    for name in ("MemTotal_bytes", "SwapTotal_bytes", "HugePages_Total"):
        key = (f"node_memory_{name}", frozenset())
        assert mine[key] == theirs[key], name  # constants: exactly equal
    cached = (
        "node_memory_Cached_bytes",
        frozenset(),
    )  # psutil's adds SReclaimable; node_exporter's is the file's field
    assert abs(mine[cached] - theirs[cached]) <= 0.02 * theirs[cached]

    root = [
        k for k in theirs if k[0] == "node_filesystem_size_bytes" and ("mountpoint", "/") in k[1]
    ]
    assert root, "node_exporter reports /"
    labels = root[0][1]
    for name in ("node_filesystem_size_bytes", "node_filesystem_files", "node_filesystem_readonly"):
        assert mine[(name, labels)] == theirs[(name, labels)], name
    for name in ("node_filesystem_free_bytes", "node_filesystem_avail_bytes"):
        assert abs(mine[(name, labels)] - theirs[(name, labels)]) <= 0.01 * theirs[(name, labels)]
        assert my_help[name] == their_help[name], name
    assert (
        mine[("node_filesystem_free_bytes", labels)]
        >= mine[("node_filesystem_avail_bytes", labels)]
    )
