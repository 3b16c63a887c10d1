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
