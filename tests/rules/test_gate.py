"""The gate on a table of cases: each stage can hold, and each passes only what it should.

Every row is (what differs from a plain case, the count decided or None, a word the reason
must hold). The plain case: 2 replicas, 4 recommended, no cooldown, owned, not paused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ebbflow.rules.gate import GateInput, gate

PLAIN = GateInput(current=2, recommended=4, why="cpu avg 90% > target 50%", now=1000.0)

CASES: list[tuple[str, dict[str, Any], int | None, str]] = [
    ("plain scale-out", {}, 4, "cpu avg"),
    # 1. missing data
    ("missing, policy holds", {"missing": True}, None, "missing"),
    ("missing, fallback given", {"missing": True, "hold_on_missing": False}, 4, "cpu"),
    ("missing never scales in", {"missing": True, "hold_on_missing": False, "recommended": 1},
     None, "never scale in"),
    # 2. nothing recommended
    ("no recommendation", {"recommended": None}, None, "no recommendation"),
    # 3, 4. in flight, converging
    ("in flight", {"in_flight": True}, None, "in flight"),
    ("converging", {"converging": True}, None, "converging"),
    # 5. stabilisation
    ("scale-in held by the window's highest", {"recommended": 1, "held": 3, "current": 4},
     3, "cpu"),
    ("scale-in held by the peak's keep", {"recommended": 1, "keep": 2, "current": 4}, 2, "cpu"),
    ("scale-in held entirely", {"recommended": 1, "held": 4, "current": 4}, None, "no change"),
    ("a scale-in's hold is never a scale-out", {"recommended": 3, "held": 6, "current": 4},
     None, "no change"),
    ("nor is the peak's keep", {"recommended": 1, "keep": 6, "current": 4}, None, "no change"),
    ("recurring peaks provided for: no scale-out",
     {"recommended": 6, "current": 4, "recurring": 4}, None, "recurring peaks are provided for"),
    ("recurring peaks: out no further than they need",
     {"recommended": 9, "current": 4, "recurring": 6}, 6, "cpu"),
    ("no rhythm: out as recommended", {"recommended": 9, "current": 4}, 8, "cpu"),
    # 8b. the whole service
    ("no scale-in while replicas send nothing", {"recommended": 1, "current": 3, "unseen": 2},
     None, "2 of 3 replicas send no fresh value of what the policy reads"),
    ("scale-out goes on while replicas send nothing", {"unseen": 1}, 4, "cpu"),
    ("bounds hold while replicas send nothing",
     {"recommended": 1, "current": 6, "max_replicas": 4, "unseen": 5}, 4, "above max_replicas"),
    ("scale-out only as far as all agree",
     {"stabilization_up": 10.0, "agreed": 3}, 3, "cpu"),
    ("scale-out agreed by none", {"stabilization_up": 10.0, "agreed": 2}, None, "no change"),
    # 6. bounds
    ("capped at max", {"recommended": 40, "max_replicas": 5}, 5, "cpu"),
    ("raised to min", {"recommended": 1, "current": 1, "min_replicas": 3}, 3,
     "below min_replicas"),
    ("above max comes down", {"recommended": 12, "current": 12, "max_replicas": 10}, 10,
     "above max_replicas"),
    # 7. limits
    ("default up-limit: double or +4", {"recommended": 40, "current": 2, "max_replicas": 50},
     6, "cpu"),
    ("max_up", {"recommended": 40, "max_up": 1, "max_replicas": 50}, 3, "cpu"),
    ("max_down", {"recommended": 1, "current": 6, "max_down": 2}, 4, "cpu"),
    # 8. no change
    ("no change", {"recommended": 2}, None, "no change"),
    # 9. cooldown
    ("cooldown out", {"cooldown_up": 60.0, "last_out": 990.0}, None, "cooldown: 50s left"),
    ("cooldown over", {"cooldown_up": 60.0, "last_out": 939.0}, 4, "cpu"),
    ("cooldown in", {"recommended": 1, "cooldown_down": 60.0, "last_in": 990.0}, None,
     "cooldown"),
    ("a scale-in is no scale-out's cooldown",
     {"recommended": 1, "cooldown_up": 60.0, "last_out": 990.0}, 1, "cpu"),
    ("bounds wait for no cooldown",
     {"recommended": 1, "current": 1, "min_replicas": 3, "cooldown_up": 60.0,
      "last_out": 999.0}, 3, "below min_replicas"),
    # 10, 11. ownership, pause
    ("a standby decides nothing", {"owned": False}, None, "not the owner"),
    ("paused", {"paused": True}, None, "paused"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "decided", "why"), CASES, ids=[c[0] for c in CASES])
def test_the_gate(case: str, change: dict[str, Any], decided: int | None, why: str) -> None:
    verdict = gate(dataclasses.replace(PLAIN, **change))
    assert verdict.to == decided, (case, verdict)
    assert why in verdict.why, (case, verdict)


def test_bounds_are_their_own_origin_and_a_load_decision_is_the_policy_s() -> None:
    assert gate(dataclasses.replace(PLAIN, current=1, recommended=1, min_replicas=3)).origin == (
        "bounds"
    )
    assert gate(PLAIN).origin == "policy"


def test_what_counts_toward_stabilisation() -> None:
    """Every recommendation that got past in-flight and converging counts, decided or not."""
    assert not gate(dataclasses.replace(PLAIN, in_flight=True)).counted
    assert not gate(dataclasses.replace(PLAIN, converging=True)).counted
    assert not gate(dataclasses.replace(PLAIN, missing=True)).counted
    assert gate(dataclasses.replace(PLAIN, owned=False)).counted
    assert gate(dataclasses.replace(PLAIN, recommended=2)).counted
    assert gate(PLAIN).counted
