"""What the action runner carries out (scaler/runner.py), and what comes back."""

from __future__ import annotations

from dataclasses import dataclass

from ebbflow.model import (
    ContainerInfo,
    Decision,
    HealingAction,
    HealingStep,
    NodeHealthChange,
    ServiceKey,
    outcome_text,
)
from ebbflow.plugins import WatchesNodes


@dataclass(frozen=True)
class Outcome:
    """What an action did: ok or not, one line saying what (or why not)."""

    ok: bool
    detail: str
    containers: tuple[str, ...] = ()
    skipped: bool = False  # nothing to do: no audit row
    # not attempted: a safety gate said no (ownership, a paused service, a state file that
    # refuses writes). Not done, and no failure of the engine or the action either
    refused: bool = False

    @property
    def text(self) -> str:
        """ok, failed or refused: as `ActionResult.outcome` names it."""
        return outcome_text(self.ok, self.refused)


@dataclass(frozen=True)
class ScaleAction:
    """A decision to converge a service on a replica count (a policy's, the reconciler's,
    a rollover)."""

    decision: Decision

    @property
    def service(self) -> ServiceKey:
        return self.decision.service

    @property
    def dry_run(self) -> bool:
        return self.decision.dry_run

    def describe(self) -> str:
        return f"scale to {self.decision.to_replicas}"


@dataclass(frozen=True)
class HealAction:
    """One container's recovery step: restart, replace, migrate, remove a leftover."""

    service: ServiceKey
    container: ContainerInfo
    action: HealingAction
    reason: str  # why it was needed: "probe failing (timeout)", "exited (code 1)"
    attempt: int  # restarts and replacements in the budget window, this one included
    slot: str  # the healer's key for the container (its budget's)
    next_delay: float | None = None  # the wait before the next step, if it fails again

    def describe(self) -> str:
        return f"{self.action} {self.container.name}"

    def step(self, outcome: Outcome, now: float, dry_run: bool) -> HealingStep:
        return HealingStep(
            self.service,
            self.container.name,
            self.action,
            self.reason,
            self.attempt,
            outcome.ok,
            outcome.detail or self.reason,
            now,
            dry_run,
            self.next_delay,
            refused=outcome.refused,
        )


@dataclass(frozen=True)
class NodeAction:
    """An actuator's own answer to a node's health (Swarm drains the node)."""

    actuator: WatchesNodes
    change: NodeHealthChange

    @property
    def service(self) -> ServiceKey:
        return ServiceKey("node", self.change.node)

    def describe(self) -> str:
        return f"{'activate' if self.change.healthy else 'drain'} node {self.change.node}"

    def step(self, outcome: Outcome, now: float, dry_run: bool) -> HealingStep:
        action: HealingAction = "activate" if self.change.healthy else "drain"
        return HealingStep(
            self.service,
            self.change.node,
            action,
            self.change.reason,
            0,
            outcome.ok,
            outcome.detail or self.change.reason,
            now,
            dry_run,
            refused=outcome.refused,
        )


Action = ScaleAction | HealAction | NodeAction
