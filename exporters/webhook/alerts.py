"""ebbflow's events as Alertmanager alerts, and the JSON that carries them.

Decisions, healing steps (migrations and Swarm drains among them) and failed actions are
one-off events: each fires once and ends by itself after `event_ttl`. A policy error, an
unhealthy container or node and a container ebbflow gave up healing are states: they
fire while they last and are sent again as resolved when the policy is fixed or the
container or node is healthy.
The webhook body is the one Alertmanager sends to its webhook receivers (version 4), so a
receiver written for Alertmanager reads ebbflow's as is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ebbflow.model import (
    ActionResult,
    Decision,
    Event,
    HealingStep,
    HealthChange,
    NodeHealthChange,
    PolicyProblem,
    ServiceFight,
    ServiceRetired,
)

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"


def rfc3339(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class Alert:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None = None  # None: firing until resolved
    resolved: bool = False
    event: bool = False  # a one-off: never de-duplicated against an earlier one
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "resolved" if self.resolved else "firing"

    @property
    def fingerprint(self) -> str:
        text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(self.labels.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def alertmanager(self) -> dict[str, Any]:
        """One alert as Alertmanager's API v2 takes it."""
        body: dict[str, Any] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "generatorURL": "",
        }
        if self.ends_at is not None:
            body["endsAt"] = rfc3339(self.ends_at)
        return body

    def webhook(self) -> dict[str, Any]:
        """One alert as Alertmanager's webhook JSON carries it."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at) if self.ends_at is not None else ZERO_TIME,
            "generatorURL": "",
            "fingerprint": self.fingerprint,
        }


def alert_for(event: Event, event_ttl: float, dry_run_alerts: bool = True) -> Alert | None:
    """The alert an event raises (or resolves), if any: one function per kind of event."""
    if getattr(event, "dry_run", False) and not dry_run_alerts:
        return None
    make = ALERTS.get(type(event))
    return make(event, event_ttl) if make is not None else None


def _scaled(event: Decision, event_ttl: float) -> Alert:
    labels = {
        "alertname": "EbbflowScaled",
        "service": str(event.service),
        "direction": event.direction,
        "replicas": str(event.to_replicas),
        "origin": event.origin,
        "severity": "info",
    }
    if event.dry_run:
        labels["dry_run"] = "true"
    summary = (
        f"{event.service}: scale {event.direction} {event.from_replicas} → {event.to_replicas}"
    )
    return Alert(
        labels,
        {"summary": summary, "description": event.reason},
        event.timestamp,
        event.timestamp + event_ttl,
        event=True,
    )


def _action_failed(event: ActionResult, event_ttl: float) -> Alert | None:
    # a refused action was never attempted: a safety gate said no (an ownership that
    # changed hands, a paused service), and what said no shows in its own health
    if event.ok or event.refused:
        return None
    d = event.decision
    return Alert(
        {
            "alertname": "EbbflowActionFailed",
            "service": str(d.service),
            "direction": d.direction,
            "severity": "warning",
        },
        {
            "summary": f"{d.service}: scale {d.direction} to {d.to_replicas} failed",
            "description": event.detail,
        },
        event.timestamp,
        event.timestamp + event_ttl,
        event=True,
    )


def _policy(event: PolicyProblem, _ttl: float) -> Alert:
    return state_alert(
        {"alertname": "EbbflowPolicyInvalid", "service": str(event.service)},
        "warning",
        firing=bool(event.errors),
        summary=f"{event.service}: policy disabled by invalid labels"
        if event.errors
        else f"{event.service}: policy valid again",
        description="; ".join(event.errors),
        timestamp=event.timestamp,
    )


def _retired(event: ServiceRetired, _ttl: float) -> Alert:
    return state_alert(
        {"alertname": "EbbflowServiceRetired", "service": str(event.service)},
        "info",
        firing=event.retired,
        summary=f"{event.service}: retired, left alone"
        if event.retired
        else f"{event.service}: managed again",
        description=event.reason,
        timestamp=event.timestamp,
    )


def _fight(event: ServiceFight, _ttl: float) -> Alert:
    return state_alert(
        {"alertname": "EbbflowServiceFight", "service": str(event.service)},
        "warning",
        firing=event.fighting,
        summary=f"{event.service}: someone else removes what ebbflow adds; paused"
        if event.fighting
        else f"{event.service}: resumed by the operator",
        description=event.reason,
        timestamp=event.timestamp,
    )


def _unhealthy(event: HealthChange, _ttl: float) -> Alert:
    name = event.container.name
    return state_alert(
        {
            "alertname": "EbbflowContainerUnhealthy",
            "service": str(event.service),
            "container": name,
        },
        "warning",
        firing=not event.healthy,
        summary=f"{name}: healthy again"
        if event.healthy
        else f"{name}: probe failing ({event.reason})",
        description=event.detail or event.reason,
        timestamp=event.timestamp,
    )


def _node(event: NodeHealthChange, _ttl: float) -> Alert:
    return state_alert(
        {"alertname": "EbbflowNodeUnhealthy", "node": event.node},
        "critical",
        firing=not event.healthy,
        summary=f"node {event.node}: healthy"
        if event.healthy
        else f"node {event.node}: {event.reason}; its containers move to other nodes",
        description=event.reason,
        timestamp=event.timestamp,
    )


def state_alert(
    labels: dict[str, str],
    severity: str,
    *,
    firing: bool,
    summary: str,
    description: str,
    timestamp: float,
) -> Alert:
    """A state fires with a description and resolves with the same labels (so the same
    fingerprint) and only a summary."""
    labels = {**labels, "severity": severity}
    if not firing:
        return Alert(labels, {"summary": summary}, timestamp, timestamp, resolved=True)
    return Alert(labels, {"summary": summary, "description": description}, timestamp)


HEALING_ALERTS = {
    "restart": "EbbflowContainerRestarted",
    "replace": "EbbflowContainerReplaced",
    "migrate": "EbbflowContainerMigrated",
    "remove_leftover": "EbbflowLeftoverRemoved",
    "drain": "EbbflowNodeDrained",
    "activate": "EbbflowNodeActivated",
}


def healing_alert(step: HealingStep, event_ttl: float) -> Alert | None:
    if step.refused:  # never attempted: as a refused scaling action (`_action_failed`)
        return None
    if step.service.kind == "node":  # Swarm drains: about a node, not a container
        labels = {"node": step.container}
    else:
        labels = {"service": str(step.service), "container": step.container}
    if step.dry_run:
        labels["dry_run"] = "true"
    if step.action in ("give_up", "recovered"):
        gave_up = step.action == "give_up"
        return state_alert(
            labels | {"alertname": "EbbflowHealingGaveUp"},
            "critical",
            firing=gave_up,
            summary=f"{step.container}: still failing after {step.attempt} restarts and "
            "replacements; ebbflow stopped healing it"
            if gave_up
            else f"{step.container}: no longer failing ({step.reason})",
            description=step.reason,
            timestamp=step.timestamp,
        )
    if step.ok:
        labels |= {"alertname": HEALING_ALERTS[step.action], "severity": "info"}
        summary = f"{step.container}: {step.action} #{step.attempt} ({step.reason})"
    else:
        labels |= {"alertname": "EbbflowActionFailed", "action": step.action, "severity": "warning"}
        summary = f"{step.container}: {step.action} failed"
    annotations = {"summary": summary, "description": step.detail}
    if step.next_delay is not None:
        annotations["next_delay_seconds"] = f"{step.next_delay:g}"
    return Alert(labels, annotations, step.timestamp, step.timestamp + event_ttl, event=True)


def group_key(labels: Mapping[str, str]) -> str:
    """Alertmanager's form: `{}:{alertname="X", service="Y"}`."""
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{{}}:{{{inner}}}"


def _common(maps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    items = [dict(m) for m in maps]
    if not items:
        return {}
    first = items[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in items[1:])}


def notification(receiver: str, group: Mapping[str, str], alerts: list[Alert]) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) for one group."""
    firing = any(not a.resolved for a in alerts)
    return {
        "version": "4",
        "groupKey": group_key(group),
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": dict(group),
        "commonLabels": _common(a.labels for a in alerts),
        "commonAnnotations": _common(a.annotations for a in alerts),
        "externalURL": "",
        "alerts": [a.webhook() for a in alerts],
    }


ALERTS: dict[type, Callable[[Any, float], Alert | None]] = {
    Decision: _scaled,
    ActionResult: _action_failed,
    PolicyProblem: _policy,
    ServiceRetired: _retired,
    ServiceFight: _fight,
    HealingStep: healing_alert,
    HealthChange: _unhealthy,
    NodeHealthChange: _node,
}
