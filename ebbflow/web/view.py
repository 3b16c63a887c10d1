"""What the status page shows: every node and service, each replica's state, and the
recent history, as one read-only snapshot (`Status`).

The view reads what the rest of ebbflow already keeps, and acts on nothing:
- the service catalog (replicas, policy and its errors, scope, pause, retire, fight, owner);
- the state file (desired count, the last decisions per direction for the cooldowns, the
  audit rows of the history);
- the nodes (engine up or down, pressure fault);
- the bus, observed: container exits (their reason), probe verdicts, Docker health, healing
  steps, decisions and their outcomes; and, through its own bounded subscription, sample
  batches (each node's last sample, its CPU and memory).

Each change it observes bumps `version` and wakes the page's live updates (`wakeup`);
the snapshot is built on demand. An agent decides nothing: its catalog is the page's only,
and shows its node and the containers it collects, with their policies and no owner.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ebbflow.bus import Bus
from ebbflow.catalog import Service, ServiceCatalog
from ebbflow.model import (
    ActionResult,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    EngineConnection,
    HealingScheduled,
    HealingStep,
    HealthChange,
    NodeHealthChange,
    OperatorControls,
    OwnershipChange,
    PolicyProblem,
    SampleBatch,
    ServiceFight,
    ServiceRetired,
)
from ebbflow.names import (
    NODE_CPU_PERCENT,
    NODE_MEMORY_PERCENT,
    PROBE_INITIAL_DELAY_LABELS,
    PROBE_LABELS,
    TELEMETRY_SOURCE,
)
from ebbflow.nodes import Nodes
from ebbflow.policy import Policy, policy_line
from ebbflow.services import format_service_key
from ebbflow.state import DecisionStore, StoredDecision

HISTORY = 200  # decisions and healing steps kept for the page (the state file has them all)
REASONS_KEPT = 4096  # containers whose exit, probe or healing reason is remembered
SENDER_AGE_SUFFIX = "_sender_age_seconds"  # the receivers' per-agent ages (remote write, Kafka)
# Longest text shown of one reason or error: they quote labels and exit messages, input
# from outside, and every open page gets every render.
MAX_TEXT = 400


def clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@dataclass(frozen=True)
class ReplicaView:
    id: str
    name: str
    node: str
    state: str  # running | starting | unhealthy | exited | healing
    reason: str = ""  # the probe's reason, the exit's, or the healing step and its next try
    since: float = 0.0


@dataclass(frozen=True)
class ServiceView:
    name: str  # format_service_key: compose:demo/web
    policy: str  # one line, "" when the service has none
    errors: tuple[str, ...]
    current: int
    desired: int | None
    min_replicas: int | None
    max_replicas: int | None
    last_decision: str
    last_outcome: str
    cooldown_up: float  # seconds left
    cooldown_down: float
    owner: str
    in_scope: bool
    paused: bool
    retired: bool
    fight: str
    replicas: tuple[ReplicaView, ...]

    @property
    def flags(self) -> list[str]:
        return [
            flag
            for flag, on in (
                ("invalid", bool(self.errors)),
                ("paused", self.paused),
                ("retired", self.retired),
                ("fight", bool(self.fight)),
                ("out of scope", not self.in_scope),
            )
            if on
        ]


@dataclass(frozen=True)
class NodeView:
    name: str
    engine_up: bool | None  # None: not known (an agent's node, seen by its samples only)
    fault: str
    cpu_percent: float | None
    memory_percent: float | None
    sample_age: float | None  # seconds since its newest sample (None: none yet)


@dataclass(frozen=True)
class HistoryRow:
    timestamp: float
    service: str
    kind: str  # decision | healing
    text: str
    outcome: str


def history_row(timestamp: float, service: str, kind: str, text: str, outcome: str) -> HistoryRow:
    return HistoryRow(timestamp, service, kind, clip(text), clip(outcome))


@dataclass(frozen=True)
class Status:
    now: float
    instance: str
    role: str
    ready: bool
    problems: dict[str, str]
    nodes: tuple[NodeView, ...]
    services: tuple[ServiceView, ...]
    history: tuple[HistoryRow, ...]
    version: int

    def service(self, name: str) -> ServiceView | None:
        return next((s for s in self.services if s.name == name), None)


@dataclass
class _Seen:
    """What the view remembers of one container beyond what the catalog holds."""

    exit: str = ""  # why it last exited
    probe: str = ""  # the last failing probe's reason ("" when healthy or never probed)
    probed: bool = False  # a probe or Docker's health has given a verdict


@dataclass
class _NodeSeen:
    last_sample: float | None = None
    cpu: float | None = None
    memory: float | None = None


class StatusView:
    """The page's model. A component (`run`) only to read sample batches off the bus
    without slowing their publisher; everything else is observed as it is published."""

    name = "status-view"

    def __init__(
        self,
        bus: Bus,
        nodes: Nodes,
        clock: Callable[[], float] = time.time,
        role: str = "all",
        instance: str = "",
        health: Callable[[], tuple[bool, dict[str, str]]] = lambda: (True, {}),
    ) -> None:
        self.nodes, self.clock, self.role = nodes, clock, role
        self.instance = instance or socket.gethostname()
        self.health = health
        self.catalog: ServiceCatalog | None = None  # set by the app (a decider's, or an agent's)
        self.store: DecisionStore | None = None
        self.version = 0
        self._wake = asyncio.Event()
        self.seen: collections.OrderedDict[str, _Seen] = collections.OrderedDict()  # by id
        # By container name (as the healer names them): the last step, the planned one.
        self.steps: collections.OrderedDict[str, HealingStep] = collections.OrderedDict()
        self.plans: collections.OrderedDict[str, HealingScheduled] = collections.OrderedDict()
        self.node_seen: dict[str, _NodeSeen] = {}
        self.history: collections.deque[HistoryRow] = collections.deque(maxlen=HISTORY)
        self.local = socket.gethostname()
        self.local_nodes = [n for n, h in nodes.handles.items() if h.local] or [""]
        self.receivers: frozenset[str] = frozenset()  # inputs that receive (set by the app)
        self.subscription = bus.subscribe("status-view", SampleBatch, capacity=16)
        bus.observe(self._on_container, ContainerEvent)
        bus.observe(self._on_health, HealthChange)
        bus.observe(self._on_step, HealingStep)
        bus.observe(self._on_plan, HealingScheduled)
        bus.observe(self._on_decision, Decision)
        bus.observe(self._on_result, ActionResult)
        bus.observe(
            self._bump,
            EngineConnection,
            NodeHealthChange,
            OperatorControls,
            OwnershipChange,
            PolicyProblem,
            ServiceFight,
            ServiceRetired,
        )

    # -- attaching -----------------------------------------------------------------------
    def attach(self, catalog: ServiceCatalog, store: DecisionStore | None) -> None:
        """The catalog and state file to read; the history starts from the state file's
        newest rows, so a restart keeps the page's past."""
        self.catalog, self.store = catalog, store
        if store is None:
            return
        rows = [
            history_row(
                d.timestamp,
                d.service,
                "decision",
                d.reason,
                (d.outcome or "pending") + (" (dry run)" if d.dry_run else ""),
            )
            for d in store.recent(HISTORY)
        ]
        rows += [
            history_row(
                s["ts"],
                s["service"],
                "healing",
                f"{s['container']}: {s['action']} #{s['attempt']} ({s['reason']})",
                "ok" if s["ok"] else f"failed: {s['detail']}",
            )
            for s in store.recent_steps(HISTORY)
        ]
        self.history.extend(sorted(rows, key=lambda r: r.timestamp)[-HISTORY:])

    # -- observing -----------------------------------------------------------------------
    def _bump(self, _event: object = None) -> None:
        self.version += 1
        self._wake.set()
        self._wake = asyncio.Event()

    def wakeup(self) -> asyncio.Event:
        """Set at the next change."""
        return self._wake

    def _of(self, container_id: str) -> _Seen:
        seen = self.seen.get(container_id)
        if seen is None:
            seen = self.seen[container_id] = _Seen()
            if len(self.seen) > REASONS_KEPT:
                self.seen.popitem(last=False)
        return seen

    def _on_container(self, event: ContainerEvent) -> None:
        info = event.container
        if event.kind is ContainerEventKind.DIE:
            self._of(info.id).exit = clip(event.detail or "exited")
        elif event.kind is ContainerEventKind.START:
            seen = self._of(info.id)
            seen.exit, seen.probe, seen.probed = "", "", False
        elif event.kind is ContainerEventKind.HEALTH:
            seen = self._of(info.id)
            status = event.detail.removeprefix("health_status:").strip()
            if status in ("healthy", "unhealthy"):
                seen.probed = True
                seen.probe = "" if status == "healthy" else "Docker health check: unhealthy"
        elif event.kind is ContainerEventKind.DESTROY:
            self.seen.pop(info.id, None)
        self._bump()

    def _on_health(self, event: HealthChange) -> None:
        seen = self._of(event.container.id)
        seen.probed = True
        seen.probe = "" if event.healthy else clip(f"{event.reason}: {event.detail}".strip(": "))
        self._bump()

    def _on_plan(self, plan: HealingScheduled) -> None:
        self.plans.pop(plan.container, None)
        if plan.at is not None:
            _keep(self.plans, plan.container, plan)
        self._bump()

    def _on_step(self, step: HealingStep) -> None:
        self.plans.pop(step.container, None)
        _keep(self.steps, step.container, step)
        self.history.append(
            history_row(
                step.timestamp,
                format_service_key(step.service),
                "healing",
                f"{step.container}: {step.action} #{step.attempt} ({step.reason})",
                (step.outcome if step.ok else f"{step.outcome}: {step.detail}")
                + (" (dry run)" if step.dry_run else ""),
            )
        )
        self._bump()

    def _on_decision(self, decision: Decision) -> None:
        self.history.append(
            history_row(
                decision.timestamp,
                format_service_key(decision.service),
                "decision",
                decision.reason,
                "pending" + (" (dry run)" if decision.dry_run else ""),
            )
        )
        self._bump()

    def _on_result(self, result: ActionResult) -> None:
        d = result.decision
        name = format_service_key(d.service)
        outcome = result.outcome + (": " + result.detail if result.detail else "")
        for i in range(len(self.history) - 1, -1, -1):  # its pending row, newest first
            row = self.history[i]
            if row.kind == "decision" and row.service == name and row.timestamp == d.timestamp:
                self.history[i] = history_row(row.timestamp, name, row.kind, row.text, outcome)
                break
        self._bump()

    async def run(self) -> None:
        """Each node's newest sample, and its CPU and memory, from the batches published."""
        async for batch in self.subscription:
            if isinstance(batch, SampleBatch):
                self.note_batch(batch)

    def note_batch(self, batch: SampleBatch) -> None:
        """A batch's news of nodes: their CPU and memory (any input's node samples, an
        agent's included), an agent's age as a receiver reports it, and this machine's own
        collection (every batch of an input that collects here, not one that receives)."""
        for sample in batch.samples:
            name = sample.name
            if name in (NODE_CPU_PERCENT, NODE_MEMORY_PERCENT):
                for node in self._nodes_named(dict(sample.labels).get("node", "")):
                    node.last_sample = max(node.last_sample or 0.0, batch.timestamp)
                    if name == NODE_CPU_PERCENT:
                        node.cpu = sample.value
                    else:
                        node.memory = sample.value
            elif batch.source == TELEMETRY_SOURCE and name.endswith(SENDER_AGE_SUFFIX):
                heard = batch.timestamp - sample.value
                for node in self._nodes_named(dict(sample.labels).get("sender", "")):
                    node.last_sample = max(node.last_sample or 0.0, heard)
        if batch.source != TELEMETRY_SOURCE and batch.source not in self.receivers:
            for node in self._nodes_named(""):
                node.last_sample = max(node.last_sample or 0.0, batch.timestamp)

    def _nodes_named(self, name: str) -> list[_NodeSeen]:
        """This machine ("" or its host name) is every engine on it (unix sockets; "" when
        there is one engine); another name is an agent's node."""
        names = self.local_nodes if name in ("", self.local) else [name]
        return [self.node_seen.setdefault(n, _NodeSeen()) for n in names]

    # -- the snapshot --------------------------------------------------------------------
    def snapshot(self) -> Status:
        now = self.clock()
        ready, problems = self.health()
        services = []
        if self.catalog is not None:
            for service in self.catalog:
                if service.replicas or service.exited or service.retired:
                    services.append(self._service(service, now))
        services.sort(key=lambda s: s.name)
        return Status(
            now=now,
            instance=self.instance,
            role=self.role,
            ready=ready,
            problems=problems,
            nodes=self._nodes(services, now),
            services=tuple(services),
            history=tuple(reversed(self.history)),
            version=self.version,
        )

    def node_title(self, name: str) -> str:
        return name or self.local

    def _nodes(self, services: list[ServiceView], now: float) -> tuple[NodeView, ...]:
        names = dict.fromkeys(self.nodes.handles)  # engines, then the nodes of containers
        for service in self.catalog or ():
            names.update(dict.fromkeys(i.node for i in service.replicas.values()))
            names.update(dict.fromkeys(i.node for i in service.exited.values()))
        names.update(dict.fromkeys(self.node_seen))  # and agents heard of
        views = []
        for name in names:
            seen = self.node_seen.get(name, _NodeSeen())
            engine: bool | None = None
            if name in self.nodes.handles:
                connected = self.catalog is None or not self.catalog.down(name)
                engine = connected and "engine" not in self.nodes.states[name].faults
            views.append(
                NodeView(
                    name=self.node_title(name),
                    engine_up=engine,
                    fault=self.nodes.fault(name),
                    cpu_percent=seen.cpu,
                    memory_percent=seen.memory,
                    sample_age=None
                    if seen.last_sample is None
                    else max(0.0, now - seen.last_sample),
                )
            )
        return tuple(views)

    def _service(self, service: Service, now: float) -> ServiceView:
        assert self.catalog is not None
        key = service.key
        policy = service.policy.policy
        store = self.store
        last = store.recent(1, key) if store is not None else []
        desired = self._desired(store, service, last[0] if last else None)
        if desired is None and policy is not None:
            desired = policy.initial_replicas  # declared, not yet decided on
        up = down = 0.0
        if policy is not None and store is not None:
            up = self._left(store, service, policy.up_cooldown, "out", now)
            down = self._left(store, service, policy.down_cooldown, "in", now)
        replicas = [self._replica(i, now, policy) for i in service.replicas.values()]
        replicas += [self._exited(i, now) for i in service.exited.values()]
        replicas.sort(key=lambda r: (r.node, r.name))
        return ServiceView(
            name=format_service_key(key),
            policy=policy_line(policy) if policy is not None else "",
            errors=tuple(clip(e) for e in service.policy.errors),
            current=service.count,
            desired=desired,
            min_replicas=policy.min_replicas if policy and policy.rules else None,
            max_replicas=policy.max_replicas if policy and policy.rules else None,
            last_decision=last[0].reason if last else "",
            last_outcome=(last[0].outcome or "pending") if last else "",
            cooldown_up=up,
            cooldown_down=down,
            owner=self._owner(service),
            in_scope=service.in_scope,
            paused=self.catalog.paused(key),
            retired=service.retired,
            fight=service.fight,
            replicas=tuple(replicas),
        )

    @staticmethod
    def _desired(
        store: DecisionStore | None, service: Service, last: StoredDecision | None
    ) -> int | None:
        """What ebbflow wants now: its newest decision while under way or carried out,
        else the count the reconciler keeps (None: nothing wanted, no policy)."""
        if last is not None and last.outcome in (None, "ok") and not last.dry_run:
            return last.to_replicas
        return store.desired(service.key) if store is not None else None

    def _owner(self, service: Service) -> str:
        assert self.catalog is not None
        if self.role == "agent":
            return "none here (an agent decides nothing)"
        if not service.in_scope:
            return "nobody (out of scope: monitored only)"
        if not service.managed:
            return "nobody (nothing to act on: monitored only)"
        if self.catalog.owns(service.key):
            return f"this instance ({self.instance})"
        return self.catalog.owner(service.key) or "nobody yet"

    def _left(
        self, store: DecisionStore, service: Service, cooldown: float, way: str, now: float
    ) -> float:
        last = store.last_decision_time(service.key, False, way)
        return 0.0 if last is None else max(0.0, cooldown - (now - last))

    @staticmethod
    def _warmup(info: ContainerInfo, policy: Policy | None) -> float:
        """How long a new replica counts as starting, as the rules read it
        (`rules/tracking.py:Replica.of`): its policy's warm-up, or its probe's initial
        delay, whichever is longer."""
        delay = policy.warmup if policy is not None else 0.0
        for label in PROBE_INITIAL_DELAY_LABELS:
            with contextlib.suppress(ValueError):  # a bad probe label is the probe's to report
                delay = max(delay, float(info.labels.get(label, 0)))
        return delay

    def _replica(self, info: ContainerInfo, now: float, policy: Policy | None) -> ReplicaView:
        seen = self.seen.get(info.id, _Seen())
        node, plan = self.node_title(info.node), self._plan(info.name, info.started_at, now)
        step = self.steps.get(info.name)
        if step is not None and step.timestamp >= info.started_at and _healing_on(step):
            return ReplicaView(info.id, info.name, node, "healing", _healing(step, now))
        if seen.probe:
            reason = seen.probe + plan
            return ReplicaView(info.id, info.name, node, "unhealthy", reason, info.started_at)
        left = self._warmup(info, policy) - (now - info.started_at) if info.started_at else 0.0
        probed = any(label in info.labels for label in PROBE_LABELS)
        if left > 0 or (probed and not seen.probed):
            reason = f"warming up ({left:.0f}s left)" if left > 0 else "waiting for its probe"
            return ReplicaView(info.id, info.name, node, "starting", reason, info.started_at)
        return ReplicaView(info.id, info.name, node, "running", "", info.started_at)

    def _exited(self, info: ContainerInfo, now: float) -> ReplicaView:
        """Exited, with its exit reason and, while the healer waits its backoff, the step
        it will take and when; healing once a step failed and the next one waits."""
        seen = self.seen.get(info.id, _Seen())
        node, plan = self.node_title(info.node), self._plan(info.name, info.finished_at, now)
        step = self.steps.get(info.name)
        since_exit = step if step is not None and step.timestamp >= info.finished_at else None
        if since_exit is not None and _healing_on(since_exit):
            return ReplicaView(info.id, info.name, node, "healing", _healing(since_exit, now))
        reason = (seen.exit or "exited") + plan
        if since_exit is not None and since_exit.refused:  # nothing under way: it says why
            reason += f"; {since_exit.action} refused: {since_exit.detail}"
        return ReplicaView(info.id, info.name, node, "exited", reason, info.finished_at)

    def _plan(self, name: str, since: float, now: float) -> str:
        """ "; restart #1 in 3s" while the healer waits to take a step for this failure."""
        plan = self.plans.get(name)
        if plan is None or plan.at is None or plan.timestamp < since:
            return ""
        return f"; {plan.action} #{plan.attempt} in {max(0.0, plan.at - now):.0f}s"


def _keep(kept: collections.OrderedDict[str, Any], key: str, value: Any) -> None:
    kept.pop(key, None)
    kept[key] = value
    if len(kept) > REASONS_KEPT:
        kept.popitem(last=False)


def _healing_on(step: HealingStep) -> bool:
    """A step failed and the next one waits; a refused step was never taken."""
    return not step.ok and not step.refused


def _healing(step: HealingStep, now: float) -> str:
    text = f"{step.action} #{step.attempt} ({step.reason})"
    if not step.ok:
        text += f" {step.outcome}: {step.detail}"
    if step.next_delay is not None:
        left = max(0.0, step.timestamp + step.next_delay - now)
        text += f"; next attempt in {left:.0f}s"
    return text


__all__ = ["HistoryRow", "NodeView", "ReplicaView", "ServiceView", "Status", "StatusView"]
