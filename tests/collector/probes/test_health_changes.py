import time

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.probes.checks import ProbeResult
from ebbflow.collector.probes.collector import ProbeInput, ProbeState
from ebbflow.collector.probes.spec import parse_probe
from ebbflow.model import ContainerInfo, HealthChange, ServiceKey


def test_only_verdict_changes_are_published_as_events() -> None:
    bus = Bus()
    changes = bus.subscribe("t", HealthChange)
    probes = ProbeInput(bus, None, time.time)  # type: ignore[arg-type]  (no docker needed)
    labels = {"ebbflow.health.url": "http://container:80/", "ebbflow.service": "api"}
    spec, errors = parse_probe(labels)
    assert spec is not None and not errors
    info = ContainerInfo("c1", "api-1", "img", labels=labels)
    state = ProbeState(spec)
    fail = ProbeResult(False, 2.0, "timeout", detail="no answer in 2s")
    for result in (fail, fail, fail, fail, ProbeResult(True, 0.01, "ok")):
        probes.publish(info, state, result)
    got = []
    while (event := changes.get_nowait()) is not None:
        got.append(event)
    assert [(e.healthy, e.reason) for e in got] == [(False, "timeout"), (True, "ok")]
    assert all(isinstance(e, HealthChange) for e in got)
    assert got[0].service == ServiceKey("label", "api") and got[0].detail == "no answer in 2s"


async def test_host_network_replicas_with_one_target_share_one_probe_that_restarts_none(
    caplog: "pytest.LogCaptureFixture",
) -> None:
    import asyncio

    from ebbflow.model import ContainerEvent, ContainerEventKind

    bus = Bus()
    changes = bus.subscribe("t", HealthChange)
    probes = ProbeInput(bus, None, time.time)  # type: ignore[arg-type]  (no docker needed)
    probed: list[str] = []

    async def fake_probe(info: ContainerInfo, spec: object) -> ProbeResult:
        probed.append(info.name)
        return ProbeResult(False, 0.0, "connection_refused", detail="refused")

    probes.probe = fake_probe  # type: ignore[method-assign]
    labels = {
        "ebbflow.health.url": "http://container:8080/",
        "ebbflow.health.interval": "1",
        "ebbflow.health.failure_threshold": "1",
        "ebbflow.service": "api",
    }
    replicas = [
        ContainerInfo(f"c{n}", f"api-{n}", "img", labels=labels, network_mode="host",
                      address="127.0.0.1")
        for n in (1, 2, 3)
    ]  # fmt: skip
    async with asyncio.TaskGroup() as group:
        probes._group = group
        for info in replicas:
            probes.watch.apply(ContainerEvent(ContainerEventKind.START, info, time.time()))
        await asyncio.sleep(0.1)
        assert probed == ["api-1"]  # once, for all three
        assert changes.get_nowait() is None  # its failure restarts no replica
        probes.watch.apply(ContainerEvent(ContainerEventKind.DIE, replicas[0], time.time()))
        await asyncio.sleep(0.1)
        assert probed == ["api-1", "api-2"]  # the next replica took it over
        for task in probes._tasks.values():
            task.cancel()
    assert probes.shared == {("api", "http://127.0.0.1:8080/"): ["c2", "c3"]}
    assert caplog.text.count("probe the same address http://127.0.0.1:8080/") == 1
