import sqlite3
from pathlib import Path

from ebbflow.model import Decision, ServiceKey
from ebbflow.state import DecisionStore

WEB = ServiceKey("compose", "web", "shop")
API = ServiceKey("label", "api")


def test_decisions_outcomes_and_cooldown_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.db"
    store = DecisionStore(path)
    d1 = Decision(WEB, 1, 2, "web: 1→2", 100.0, {"cpu_avg_percent": 91.5})
    store.record(d1)
    store.record(Decision(API, 3, 2, "api: 3→2", 150.0))
    store.record_outcome(d1, True, "started shop_web_2")
    store.close()
    store = DecisionStore(path)
    assert store.last_decision_time(WEB, dry_run=False) == 100.0
    assert store.last_decision_time(API, dry_run=True) is None
    (row,) = store.recent(service=WEB)
    assert (row.reason, row.inputs, row.outcome, row.detail) == (
        "web: 1→2",
        {"cpu_avg_percent": 91.5},
        "ok",
        "started shop_web_2",
    )
    assert [r.service for r in store.recent()] == ["label:api", "compose:shop/web"]


def test_a_state_file_from_before_decision_origins_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
            " service TEXT NOT NULL, from_replicas INTEGER NOT NULL, to_replicas INTEGER NOT"
            " NULL, reason TEXT NOT NULL, inputs TEXT NOT NULL, dry_run INTEGER NOT NULL,"
            " outcome TEXT, detail TEXT)"
        )
        db.execute(
            "INSERT INTO decisions (ts, service, from_replicas, to_replicas, reason, inputs,"
            " dry_run, outcome) VALUES (100, 'compose:shop/web', 1, 2, 'old', '{}', 0, 'ok')"
        )
    store = DecisionStore(path)
    (old,) = store.recent()
    assert (old.reason, old.origin) == ("old", "policy")
    assert store.last_carried_out(WEB) == (2, "policy")
    store.record(Decision(WEB, 2, 3, "back to 3", 200.0, origin="reconcile"))
    assert store.last_decision_time(WEB, dry_run=False) == 100.0  # reconciling: no cooldown
    assert [d.origin for d in store.recent()] == ["reconcile", "policy"]
    assert store.last_carried_out(WEB) == (2, "policy")  # the reconcile has no outcome yet
