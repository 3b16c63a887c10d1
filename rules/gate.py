"""The gate between a recommendation and a decision: one pure function.

Strategies only recommend; the gate owns everything that decides whether and how far to
act, in this order:

1. missing data: a policy that holds on missing data holds;
2. nothing recommended;
3. an action in flight (its result not in yet);
4. converging (an action succeeded and the containers are still catching up);
5. stabilisation: scale-in to the highest recommendation of the stabilisation window
   (and never on missing data, never below the recent peak's `keep`); scale-out only as
   far as every recommendation of `stabilization_up` agrees;
6. bounds: min..max replicas always hold;
7. limits: max_up/max_down per decision (by default as HPA: double or add 4);
8. no change;
9. cooldown per direction (a decision only back within bounds neither waits nor starts one);
10. ownership: a standby decides nothing;
11. pause: the operator's word.

`gate(GateInput) -> Verdict`; the table of cases is tests/rules/test_gate.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Origin = Literal["policy", "bounds"]


@dataclass(frozen=True)
class GateInput:
    current: int  # running replicas
    recommended: int | None  # the largest recommendation; None when none was made
    why: str  # its reason
    now: float
    missing: bool = False  # a metric's data is missing or stale
    hold_on_missing: bool = True  # the policy holds on missing data (no fallback)
    in_flight: bool = False
    converging: bool = False
    # The highest / lowest recommendation of the stabilisation windows, before this one
    # (None when there was none): the gate adds this one itself.
    held: int | None = None
    agreed: int | None = None
    stabilization_up: float = 0.0
    keep: int = 0  # replicas a scale-in must keep (the recent peak's)
    min_replicas: int = 1
    max_replicas: int = 10
    max_up: int | None = None
    max_down: int | None = None
    growth: float = 1.5  # the saturation growth factor, for the default up-limit
    cooldown_up: float = 0.0
    cooldown_down: float = 0.0
    last_out: float | None = None  # the last scale-out decision (ours or the leader's)
    last_in: float | None = None
    owned: bool = True
    paused: bool = False


@dataclass(frozen=True)
class Verdict:
    to: int | None  # the decided count; None: hold
    why: str  # the decision's reason, or why it holds
    origin: Origin = "policy"
    # Whether this recommendation counts toward the stabilisation windows: every one that
    # got past in-flight and converging does.
    counted: bool = False

    @property
    def decided(self) -> bool:
        return self.to is not None


def hold(why: str, counted: bool = False) -> Verdict:
    return Verdict(None, why, counted=counted)


def gate(i: GateInput) -> Verdict:
    if i.missing and i.hold_on_missing:
        return hold("data missing or stale: holding")
    if i.recommended is None:
        return hold("no recommendation")
    if i.in_flight:
        return hold("an action is in flight")
    if i.converging:
        return hold("replicas still converging on the last action")
    desired, why, current = i.recommended, i.why, i.current
    if desired < current:
        if i.missing:
            return hold("never scale in on missing or stale data", counted=True)
        held = desired if i.held is None else max(i.held, desired)
        desired = max(desired, held or desired, i.keep)
    elif desired > current and i.stabilization_up > 0:
        # Out only as far as every recommendation of the last moments agrees: one
        # noisy point is not a rise.
        agreed = desired if i.agreed is None else min(i.agreed, desired)
        desired = max(current, min(desired, agreed or desired))
    desired = max(min(desired, i.max_replicas), i.min_replicas)
    if current > i.max_replicas:
        why = f"{current} replicas above max_replicas {i.max_replicas}"
    elif current < i.min_replicas:
        why = f"{current} replicas below min_replicas {i.min_replicas}"
    else:
        up_limit = (
            i.max_up
            if i.max_up is not None
            else max(4, current, math.ceil((i.growth - 1) * current - 1e-9))
        )
        desired = min(desired, current + up_limit)
        if i.max_down is not None:
            desired = max(desired, current - i.max_down)
    if desired == current:
        return hold("no change", counted=True)
    # Only back within min..max (a deploy started short, say): no load asked for it, so
    # no cooldown holds it and it starts none.
    bounds = (current < i.min_replicas and desired == i.min_replicas) or (
        current > i.max_replicas and desired == i.max_replicas
    )
    out = desired > current
    cooldown = i.cooldown_up if out else i.cooldown_down
    last = i.last_out if out else i.last_in
    if not bounds and last is not None and i.now - last < cooldown:
        left = cooldown - (i.now - last)
        return hold(f"cooldown: {left:.0f}s left", counted=True)
    if not i.owned:
        return hold("not the owner: another instance decides", counted=True)
    if i.paused:
        return hold("paused by the operator", counted=True)
    return Verdict(desired, why, "bounds" if bounds else "policy", counted=True)
