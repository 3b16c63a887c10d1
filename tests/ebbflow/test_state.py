import sqlite3
from pathlib import Path

import pytest

from ebbflow.model import Decision, HealingStep, ServiceKey
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


def test_a_healing_log_from_before_refused_steps_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE healing (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,"
            " service TEXT NOT NULL, slot TEXT NOT NULL, container TEXT NOT NULL, action TEXT"
            " NOT NULL, reason TEXT NOT NULL, attempt INTEGER NOT NULL, ok INTEGER NOT NULL,"
            " detail TEXT NOT NULL, dry_run INTEGER NOT NULL)"
        )
        db.execute(
            "INSERT INTO healing (ts, service, slot, container, action, reason, attempt, ok,"
            " detail, dry_run) VALUES (100, 'compose:shop/web', 's', 'web-1', 'restart', 'exited',"
            " 1, 0, 'engine said no', 0)"
        )
    store = DecisionStore(path)
    refused = HealingStep(WEB, "web-1", "restart", "exited", 2, False, "not done: paused", 200.0,
                          refused=True)  # fmt: skip
    store.record_step(refused, "s")
    assert [row["outcome"] for row in store.recent_steps()] == ["refused", "failed"]
    assert store.healing_since(0.0, dry_run=False) == [("s", "restart", 100.0)]


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


def test_a_state_file_deleted_under_a_run_is_said_then_written_back_with_its_history(
    tmp_path: Path,
) -> None:
    from ebbflow.state import DELETED

    path = tmp_path / "state.db"
    store = DecisionStore(path)
    decision = Decision(ServiceKey("compose", "web", "shop"), 1, 3, "r", 5.0)
    store.record(decision)
    assert store.check() is None
    path.unlink()
    problem = store.check()  # first: said, and no action until it is back
    assert problem is not None and problem.startswith(DELETED) and not store.writable
    assert store.check() is None and store.writable  # next: written back from the open copy
    assert path.exists() and [d.to_replicas for d in DecisionStore(path).recent()] == [3]


def test_a_state_file_replaced_by_another_stops_actions(tmp_path: Path) -> None:
    """Another file's history is not this instance's to act on: said, and no action."""
    from ebbflow.state import REPLACED

    path = tmp_path / "state.db"
    store = DecisionStore(path)
    other = tmp_path / "other.db"
    DecisionStore(other).close()
    other.replace(path)
    for _ in range(2):  # and stays so
        problem = store.check()
        assert problem is not None and problem.startswith(REPLACED) and not store.writable


@pytest.mark.parametrize(
    ("content", "cause"),
    [(b"this is not a database at all" * 100, "file is not a database")],
)
def test_a_corrupt_state_file_fails_the_start_naming_path_and_cause(
    tmp_path: Path, content: bytes, cause: str
) -> None:
    from ebbflow.state import StateFileError

    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(StateFileError) as raised:
        DecisionStore(path)
    assert str(raised.value) == f"state file {path}: cannot be used: {cause}"


def test_a_refused_write_is_counted_and_said_once_never_raised(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "state.db")
    store._db.close()  # any statement now fails, as on a file that refuses them
    assert store.record(Decision(ServiceKey("compose", "web", "shop"), 1, 3, "r", 5.0)) == 0
    assert store.recent() == [] and store.errors == 2
    assert store.problem is not None and store.problem.startswith("the state file refuses")


class Refusing:
    """The store's connection, refusing every write while `refuse` is set (as a file made
    read-only or a full disk does)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.refuse = False

    def execute(self, sql: str, args: object = ()) -> sqlite3.Cursor:
        if self.refuse and not sql.lstrip().upper().startswith(("SELECT", "PRAGMA")):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return self.db.execute(sql, args)  # type: ignore[arg-type]

    def close(self) -> None:
        self.db.close()


def test_writes_refused_while_an_action_was_under_way_are_written_in_order_once_it_works(
    tmp_path: Path,
) -> None:
    store = DecisionStore(tmp_path / "state.db")
    refusing = Refusing(store._db)
    store._db = refusing  # type: ignore[assignment]
    scale_out = Decision(WEB, 1, 3, "web: 1→3", 100.0)
    store.record(scale_out)
    refusing.refuse = True  # the file breaks while the clone is made
    store.record_outcome(scale_out, True, "started shop_web_2, shop_web_3")
    scale_in = Decision(WEB, 3, 2, "web: 3→2", 200.0)
    store.record(scale_in)
    store.record_outcome(scale_in, False, "not done: the state file refuses writes")
    assert len(store.backlog) == 3 and store.problem is not None
    assert store.check() is not None and len(store.backlog) == 3  # still refused: kept
    refusing.refuse = False
    assert store.check() is None and not store.backlog
    rows = [(r.reason, r.outcome, r.detail) for r in store.recent(service=WEB)]
    assert rows == [
        ("web: 3→2", "failed", "not done: the state file refuses writes"),
        ("web: 1→3", "ok", "started shop_web_2, shop_web_3"),
    ]
    assert store._rows("SELECT id FROM decisions WHERE outcome IS NULL") == []


def test_the_backlog_is_bounded_and_drops_its_oldest_writes_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ebbflow.state.BACKLOG", 3)
    store = DecisionStore(tmp_path / "state.db")
    refusing = Refusing(store._db)
    store._db = refusing  # type: ignore[assignment]
    refusing.refuse = True
    for n in range(5):
        store.record(Decision(API, n, n + 1, f"api: {n}→{n + 1}", float(n)))
    assert (len(store.backlog), store.dropped) == (3, 2)
    refusing.refuse = False
    assert store.check() is None
    assert [r.reason for r in store.recent(service=API)] == ["api: 4→5", "api: 3→4", "api: 2→3"]


def test_a_row_that_notes_what_happened_carries_its_outcome_in_one_write(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "state.db")
    store.record(Decision(WEB, 4, 0, "web: 4→0, lost", 7.0, origin="outage"), ("outage", "why"))
    (row,) = store.recent()
    assert (row.outcome, row.detail, row.origin) == ("outage", "why", "outage")


def test_the_heartbeat_leaves_the_records_synced(tmp_path: Path) -> None:
    """The heartbeat is written without an fsync; every record after it keeps the
    connection's synced commit."""
    store = DecisionStore(tmp_path / "state.db")
    assert store.check() is None
    db = store._db
    assert db.execute("SELECT value FROM meta WHERE key = 'heartbeat'").fetchone() is not None
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL, as opened
