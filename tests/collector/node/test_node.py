"""The node input on this machine's real /proc."""

import socket

from ebbflow.bus import Bus
from ebbflow.collector.node import NodeConfig, NodeInput
from ebbflow.collector.node.meminfo import parse_meminfo


def test_node_exporter_names_and_labels() -> None:
    clock = iter(range(100)).__next__
    node = NodeInput(Bus(), NodeConfig(), 1.0, lambda: float(clock()))
    node.read()
    samples = node.read()
    names = {s.name for s in samples}
    for expected in (
        "node_cpu_seconds_total",
        "node_load1",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_network_receive_bytes_total",
        "node_boot_time_seconds",
        "ebbflow_node_memory_percent",
    ):
        assert expected in names, expected
    assert all(s.label("node") == "" for s in samples)  # node_exporter's labels alone
    root = [
        s
        for s in samples
        if s.name == "node_filesystem_avail_bytes" and s.label("mountpoint") == "/"
    ]
    assert root and root[0].value > 0
    cpu_modes = {s.label("mode") for s in samples if s.name == "node_cpu_seconds_total"}
    assert {"user", "system", "idle"} <= cpu_modes and "guest" not in cpu_modes
    # lo is in netclass's series, not netdev's, as with node_exporter 1.5
    lo = {s.name for s in samples if s.label("device") == "lo"}
    assert "node_network_up" in lo and "node_network_receive_bytes_total" not in lo
    # `ignored_devices` leaves devices out
    device = next(s.label("device") for s in samples if s.name.endswith("receive_bytes_total"))
    quiet = NodeInput(Bus(), NodeConfig(ignored_devices=(device,)), 1.0, lambda: 0.0).read()
    assert not [
        s
        for s in quiet
        if s.name == "node_network_receive_bytes_total" and s.label("device") == device
    ]
    # a row per collector that ran, those ebbflow always runs included
    ran = {s.label("collector") for s in samples if s.name == "node_scrape_collector_success"}
    assert ran == set(node.collectors) and {"cpu", "meminfo", "loadavg", "filesystem"} <= ran


def test_a_configured_name_or_an_agent_labels_every_series_with_its_node() -> None:
    node = NodeInput(Bus(), NodeConfig(name="edge-7"), 1.0, lambda: 0.0)
    assert {s.label("node") for s in node.read()} == {"edge-7"}
    agent = NodeInput(Bus(), NodeConfig(), 1.0, lambda: 0.0, labelled=True)
    assert {s.label("node") for s in agent.read()} == {socket.gethostname()}


def test_meminfo_names_follow_node_exporter() -> None:
    text = "MemTotal:  100 kB\nActive(anon):  3 kB\nHugePages_Total:  2\nbogus line\n"
    assert parse_meminfo(text) == [
        ("node_memory_MemTotal_bytes", 102400.0, "Memory information field MemTotal_bytes."),
        ("node_memory_Active_anon_bytes", 3072.0, "Memory information field Active_anon_bytes."),
        ("node_memory_HugePages_Total", 2.0, "Memory information field HugePages_Total."),
    ]
