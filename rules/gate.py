"""The gate between a recommendation and a decision: one pure function.

Strategies only recommend; the gate owns everything that decides whether and how far to
act, in this order:

1. missing data: a policy that holds on missing data holds;
2. nothing recommended;
3. an action in flight (its result not in yet);
4. converging (an action succeeded and the containers are still catching up);
5. stabilisation: scale-in to the highest recommendation of the stabilisation window
   (and never on missing data, never below the recent peak's `keep`); scale-out only as
   far as every recommendation of `stabilization_up` agrees, and, while the load's peaks
   recur (rhythm.py), no further than what the highest of them needs at the target;
6. bounds: min..max replicas always hold;
7. limits: max_up/max_down per decision (by default as HPA: double or add 4);
8. no change;
8b. the whole service: no scale-in while some replicas send no fresh samples (an agent
   missing on their node, or gone): their load is unknown, never zero. HPA, with pods
   missing metrics, assumes 100 % of target for a scale-in; holding is the same in effect
   at the edge and simpler to explain. Scale-out goes on (it is the safe direction);
9. a window full of fresh data: after any start (this instance's, the service's, a
   reconnect to its engine) no decision rests on less than the policy's window;
10. cooldown per direction (a decision only back within bounds neither waits nor starts one,
   nor waits for a full window);
11. ownership: a standby decides nothing; nor does anyone while no action may be taken
    (the state file cannot record it);
12. pause: the operator's word.

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
    # Replicas the highest of the load's recurring peaks needs at the target (rhythm.py);
    # 0 without a rhythm, or while saturated (the load may be past any peak seen).
    recurring: int = 0
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
    blocked: str = ""  # why no action may be taken at all now (the state file cannot be written)
    # Seconds of the window not yet covered by fresh data since a start (this instance's,
    # the service's, a reconnect): no decision rests on a window that is not full.
    window_gap: float = 0.0
    # Running replicas past their warm-up whose samples do not arrive (no agent on their
    # node, or it is gone), or ready ones without a value of a metric a rule reads: a
    # scale-in never rests on part of the service.
    unseen: int = 0


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
    blocked = _blocked(i) or _provided_for(i)
    if blocked is not None:
        return blocked
    assert i.recommended is not None
    desired = _stabilised(i, i.recommended)
    if desired is None:
        return hold("never scale in on missing or stale data", counted=True)
    desired, why = _within_bounds_and_limits(i, desired)
    whole = _whole_service(i, desired, why)
    if whole is None:
        return hold(
            f"{i.unseen} of {i.current} replicas send no fresh value of what the policy "
            "reads: no scale-in on part of the service",
            counted=True,
        )
    desired, why = whole
    if desired == i.current:
        return hold("no change", counted=True)
    # Only back within min..max (a deploy started short, say): no load asked for it, so
    # no cooldown holds it and it starts none.
    bounds = (i.current < i.min_replicas and desired == i.min_replicas) or (
        i.current > i.max_replicas and desired == i.max_replicas
    )
    if not bounds:
        waiting = _waiting(i, out=desired > i.current)
        if waiting is not None:
            return waiting
    if not i.owned:
        return hold("not the owner: another instance decides", counted=True)
    if i.blocked:
        return hold(f"no action now: {i.blocked}", counted=True)
    if i.paused:
        return hold("paused by the operator", counted=True)
    return Verdict(desired, why, "bounds" if bounds else "policy", counted=True)


def _blocked(i: GateInput) -> Verdict | None:
    """Stages 1-4: nothing to decide on, or something else acts on the service."""
    if i.missing and i.hold_on_missing:
        return hold("data missing or stale: holding")
    if i.recommended is None:
        return hold("no recommendation")
    if i.in_flight:
        return hold("an action is in flight")
    if i.converging:
        return hold("replicas still converging on the last action")
    return None


def _provided_for(i: GateInput) -> Verdict | None:
    """Stage 5, first: no scale-out while the replicas already serve the highest of the
    load's recurring peaks at the target."""
    if i.recurring and i.recommended is not None and i.recommended > i.current >= i.recurring:
        return hold(
            f"the load's recurring peaks are provided for: {i.current} replicas serve the "
            f"highest of them at the target ({i.recurring} needed)",
            counted=True,
        )
    return None


def _stabilised(i: GateInput, desired: int) -> int | None:
    """Stage 5; None when a scale-in would rest on missing data."""
    if desired < i.current:
        if i.missing:
            return None
        held = desired if i.held is None else max(i.held, desired)
        # ... never past the current count: what a scale-in keeps is a hold, not a
        # scale-out (the window's highest may be one the gate did not let through)
        return min(i.current, max(desired, held or desired, i.keep))
    if desired > i.current and i.recurring:
        desired = min(desired, max(i.current, i.recurring))
    if desired > i.current and i.stabilization_up > 0:
        # Out only as far as every recommendation of the last moments agrees: one
        # noisy point is not a rise.
        agreed = desired if i.agreed is None else min(i.agreed, desired)
        return max(i.current, min(desired, agreed or desired))
    return desired


def _within_bounds_and_limits(i: GateInput, desired: int) -> tuple[int, str]:
    """Stages 6-7: min..max always hold; outside them the reason says so, inside them a
    decision moves at most max_up/max_down (by default as HPA: double or add 4)."""
    desired = max(min(desired, i.max_replicas), i.min_replicas)
    if i.current > i.max_replicas:
        return desired, f"{i.current} replicas above max_replicas {i.max_replicas}"
    if i.current < i.min_replicas:
        return desired, f"{i.current} replicas below min_replicas {i.min_replicas}"
    up_limit = (
        i.max_up
        if i.max_up is not None
        else max(4, i.current, math.ceil((i.growth - 1) * i.current - 1e-9))
    )
    desired = min(desired, i.current + up_limit)
    if i.max_down is not None:
        desired = max(desired, i.current - i.max_down)
    return desired, i.why


def _whole_service(i: GateInput, desired: int, why: str) -> tuple[int, str] | None:
    """Stage 8b: while replicas send no fresh samples, a scale-in goes only back to
    max_replicas; None when it would rest on part of the service."""
    if not i.unseen or desired >= min(i.current, i.max_replicas):
        return desired, why
    if i.current <= i.max_replicas:
        return None
    return i.max_replicas, f"{i.current} replicas above max_replicas {i.max_replicas}"


def _waiting(i: GateInput, out: bool) -> Verdict | None:
    """Stages 9-10: a window full of fresh data, then the direction's cooldown since its
    last decision."""
    if i.window_gap > 0:
        return hold(f"window not full: {i.window_gap:.0f}s of data to come", counted=True)
    cooldown = i.cooldown_up if out else i.cooldown_down
    last = i.last_out if out else i.last_in
    if last is not None and i.now - last < cooldown:
        return hold(f"cooldown: {cooldown - (i.now - last):.0f}s left", counted=True)
    return None
