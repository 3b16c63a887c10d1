import time

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
