"""`ebbflow pause|resume|forget`: written to the state file, announced by the running
instance, followed by the rule engine."""

from __future__ import annotations

from pathlib import Path

from ebbflow.bus import Bus
from ebbflow.controls import ControlsWatch
from ebbflow.model import Decision, OperatorControls, ServiceKey
from ebbflow.state import DecisionStore

from ..conftest import VirtualClock
from ..rules.harness import WEB, Harness

TARGET = {"ebbflow.scale.target": "50", "ebbflow.scale.window": "1", "ebbflow.scale.cooldown": "0"}


def test_a_paused_service_is_watched_but_never_decided_until_resumed(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "s.db")
    clock = VirtualClock()
    h = Harness(store, clock, TARGET)
    watch = ControlsWatch(Bus(), store, clock)
    h.start()
    store.set_paused("shop/web", True, clock())
    event = watch.poll()
    assert event is not None and event.paused == frozenset({"shop/web"})
    h.catalog.on_controls(event)
    for _ in range(3):
        assert h.tick(100.0) == []
    assert [s.labels for s in watch.telemetry(0) if s.name == "ebbflow_service_paused"] == [
        (("service", "shop/web"),)
    ]
    assert watch.poll() is None  # nothing changed: nothing announced
    store.set_paused("shop/web", False, clock())
    resumed = watch.poll()
    assert resumed is not None and resumed.paused == frozenset()
    h.catalog.on_controls(resumed)
    assert h.tick(100.0) != []


def test_forgetting_drops_the_decisions_and_is_announced_once(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "s.db")
    other = ServiceKey("compose", "db", "shop")
    for key in (WEB, other):
        decision = Decision(key, 1, 3, "r", 1.0)
        store.record(decision)
        store.record_outcome(decision, True, "ok")
    watch = ControlsWatch(Bus(), store, lambda: 5.0)
    watch.poll()  # the first announcement: nothing paused, nothing forgotten
    assert store.forget(WEB, "web", 5.0) == 1
    event = watch.poll()
    assert isinstance(event, OperatorControls) and event.forgotten == frozenset({"web"})
    assert store.last_carried_out(WEB) is None and store.last_carried_out(other) == (3, "policy")
    assert watch.poll() is None
    # A restart does not announce an old forget again.
    assert ControlsWatch(Bus(), store, lambda: 6.0).poll() == OperatorControls(
        frozenset(), frozenset(), 6.0
    )
