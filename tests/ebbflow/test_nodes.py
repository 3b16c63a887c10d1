"""Node health: an engine that stops answering, pressure limits, and what is announced."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebbflow.bus import Bus
from ebbflow.config import ConfigError, DockerConfig, PressureLimits, load_config
from ebbflow.docker_api import DockerHandle
from ebbflow.model import NodeHealthChange, Sample
from ebbflow.nodes import NodeMonitor, Nodes, tls_from_environment


class FakeEngine(DockerHandle):
    """A handle whose engine answers while `up` is true; nothing is ever contacted."""

    def __init__(self, node: str, host: str = "unix:///nonexistent.sock") -> None:
        super().__init__(host, node=node)
        self.up = True

    async def ping(self) -> None:
        if not self.up:
            raise ConnectionRefusedError("engine down")


class Seen:
    """Every NodeHealthChange published so far, in order."""

    def __init__(self, bus: Bus) -> None:
        self.subscription = bus.subscribe("test", NodeHealthChange)
        self.changes: list[tuple[str, bool, str]] = []

    def __call__(self) -> list[tuple[str, bool, str]]:
        while (event := self.subscription.get_nowait()) is not None:
            assert isinstance(event, NodeHealthChange)
            self.changes.append((event.node, event.healthy, event.reason))
        return self.changes


def monitor(config: DockerConfig, *engines: FakeEngine) -> tuple[NodeMonitor, Seen]:
    bus = Bus()
    seen = Seen(bus)
    return NodeMonitor(bus, Nodes(engines), config, lambda: 1000.0), seen


async def test_an_engine_is_down_after_so_many_failed_checks_and_back_at_the_first_answer() -> None:
    n1, n2 = FakeEngine("n1"), FakeEngine("n2")
    mon, seen = monitor(DockerConfig(node_failures=3), n1, n2)
    for node in ("n1", "n2"):
        await mon.check(node)
    assert seen() == [("n1", True, "answers"), ("n2", True, "answers")]  # first verdicts
    seen.changes.clear()
    n2.up = False
    for _ in range(2):
        await mon.check("n2")
    assert seen() == [] and mon.nodes.healthy("n2")
    await mon.check("n2")
    await mon.check("n2")  # still down: said once
    assert seen() == [("n2", False, "engine not answering (ConnectionRefusedError)")]
    assert mon.nodes.healthy_nodes() == ["n1"]
    n2.up = True
    await mon.check("n2")
    assert seen()[-1] == ("n2", True, "engine fault cleared")
    metrics = {(s.name, s.labels): s.value for s in mon.telemetry(0)}
    assert metrics[("ebbflow_node_healthy", (("node", "n2"),))] == 1.0


def node_samples(memory: float, cpu: float) -> list[Sample]:
    return [
        Sample("ebbflow_node_memory_percent", memory),
        Sample("ebbflow_node_cpu_percent", cpu),
        Sample("node_load1", 99.0),
    ]


def test_pressure_must_last_and_applies_to_the_engines_on_this_machine() -> None:
    local, remote = FakeEngine("n1"), FakeEngine("n2", "tcp://127.0.0.1:2375")
    config = DockerConfig(pressure=PressureLimits(memory_percent=90, for_seconds=10))
    mon, seen = monitor(config, local, remote)
    mon.judge_pressure(node_samples(95, 10), now=100)
    assert mon.nodes.healthy("n1")  # not for long enough yet
    mon.judge_pressure(node_samples(96, 10), now=111)
    assert seen()[-1] == ("n1", False, "under pressure: memory percent 96 > 90")
    assert mon.nodes.healthy("n2")  # a remote engine's machine is not this one
    mon.judge_pressure(node_samples(50, 10), now=112)
    assert seen()[-1] == ("n1", True, "pressure fault cleared")
    mon.judge_pressure(node_samples(95, 10), now=113)
    mon.judge_pressure(node_samples(50, 10), now=130)  # the clock restarts on each dip
    mon.judge_pressure(node_samples(95, 10), now=131)
    assert mon.nodes.healthy("n1")


def test_one_fault_clearing_leaves_the_other() -> None:
    nodes = Nodes([FakeEngine("n1"), FakeEngine("n2")])
    assert nodes.set_fault("n1", "engine", "down")
    assert not nodes.set_fault("n1", "pressure", "memory")
    assert not nodes.set_fault("n1", "engine", None)
    assert nodes.fault("n1") == "memory" and not nodes.healthy("n1")
    assert nodes.set_fault("n1", "pressure", None)


def test_nodes_config_names_what_is_wrong() -> None:
    config = load_config(
        environ={"EBBFLOW_DOCKER__NODES__N2": "unix:///run/n2.sock"},
        overrides={"docker": {"nodes": {"n1": "unix:///var/run/docker.sock"}}},
    )
    assert config.docker.nodes == {"n1": "unix:///var/run/docker.sock", "n2": "unix:///run/n2.sock"}
    handles = Nodes.from_config(config.docker).handles
    assert sorted((h.node, h.host) for h in handles.values()) == [
        ("n1", "unix:///var/run/docker.sock"),
        ("n2", "unix:///run/n2.sock"),
    ]
    with pytest.raises(ConfigError, match=r"docker\.nodes: .*node name 'bad name'"):
        load_config(environ={}, overrides={"docker": {"nodes": {"bad name": "unix:///x"}}})
    with pytest.raises(ConfigError, match=r"docker\.pressure\.memory_percent"):
        load_config(environ={}, overrides={"docker": {"pressure": {"memory_percent": 150}}})
    single = Nodes.from_config(DockerConfig(host="unix:///x.sock"))
    assert list(single.handles) == [""] and not single.several


def test_docker_tls_from_the_environment_is_built_here_only_for_remote_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the docker CLI reads DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, into the one context
    ebbflow follows (ebbflow/engine_certs.py); a folder without the files is named."""
    assert tls_from_environment({}) is None
    assert tls_from_environment({"DOCKER_TLS_VERIFY": "", "DOCKER_CERT_PATH": "/x"}) is None
    with pytest.raises(ConfigError, match=rf"DOCKER_CERT_PATH={tmp_path}: cert_path: no ca.pem"):
        tls_from_environment({"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)})
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    # Only unix sockets: TLS is not theirs, so the empty folder is never read.
    local = Nodes.from_config(DockerConfig(host="unix:///run/docker.sock"))
    assert local.tls is None and local.tls_config is None
    with pytest.raises(ConfigError, match="DOCKER_TLS_VERIFY"):
        Nodes.from_config(DockerConfig(nodes={"far": "tcp://127.0.0.1:1"}))
