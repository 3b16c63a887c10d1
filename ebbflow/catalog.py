"""The service catalog: the one place that answers, for every service, what it is and
whether this instance may act on it.

It observes the bus synchronously (`Bus.observe`), so when the rule engine, the
reconciler or the healer handle a container event, the catalog already holds it. For each
service it keeps:

- its running replicas and their nodes, and the containers that only exited;
- the container that defines it (`services.defining`: the founder, or compose's newest)
  and its guests (`services.guests`);
- its policy, parsed once per change of the defining container's labels, and the
  policy's errors (a `PolicyProblem` on the bus when they appear and when they are fixed);
- whether it lies in the instance's scope, is paused by the operator, retired by its
  operator, or paused for a fight;
- whether this instance may act on it now: in scope, not paused, and owned, where
  ownership is one pluggable answer (`Ownership`: today the lease).

The deciders read it; none of them builds services from events on its own.
See docs/architecture.md for the words (service, replica, founder, guest, copy, ...).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from ebbflow.bus import Bus
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.healing_policy import is_managed
from ebbflow.metrics import Desc
from ebbflow.model import (
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    EngineConnection,
    OperatorControls,
    PolicyProblem,
    Sample,
    ServiceFight,
    ServiceKey,
    ServiceRetired,
)
from ebbflow.policy import PolicyResult, effective_labels, parse_policy
from ebbflow.services import defining, guests, names_service, service_key

log = logging.getLogger("ebbflow.catalog")

OWN_LABEL_PREFIXES = ("aliyun.", "ebbflow.")  # labels ebbflow reads to know what to do
EMPTY_KEPT = 3600.0  # seconds a service with no running replica stays known (a restore)
EXITED_KEPT = 64  # exited containers remembered per service
GONE_KEPT = 4096  # removed containers whose service is remembered (their events lag behind)

SERVICES = Desc("ebbflow_catalog_services", "Services the catalog knows, running or not.")
OWNED = Desc(
    "ebbflow_service_owned",
    "1 when this instance may act on the service now (it holds the lease and the "
    "service's claim), else 0: which decider owns which service.",
    "gauge",
    ("service",),
)
IN_SCOPE = Desc(
    "ebbflow_service_in_scope",
    "1 when the service lies in this instance's scope (it may act), else 0.",
    "gauge",
    ("service",),
)
POLICY_VALID = Desc(
    "ebbflow_policy_valid", "1 when the service's policy labels are valid, else 0.", "gauge",
    ("service",),
)  # fmt: skip
POLICY_ERRORS = Desc(
    "ebbflow_policy_errors", "Validation errors in the service's policy labels.", "gauge",
    ("service",),
)  # fmt: skip
REPLICAS = Desc(
    "ebbflow_service_replicas", "Running replicas of a service with a policy.", "gauge",
    ("service",),
)  # fmt: skip


class Ownership(Protocol):
    """Whether this instance may act on a service now. The lease (one active instance
    per scope) and a claim per service; the Swarm lease; a Kafka partition's owner
    (`ebbflow.partitions`). Only asked about services in the scope."""

    def acting(self) -> bool:
        """Whether this instance acts at all now (the leader), whatever the service."""
        ...

    def owns(self, service: ServiceKey) -> bool: ...

    def owner(self, service: ServiceKey) -> str:
        """Who acts on the service, as far as this instance knows ("" when nobody)."""
        ...

    def epoch(self) -> int:
        """Changes whenever what this instance owns changes: a decision taken in another
        epoch is not acted on."""
        ...


class Everyone:
    """Ownership when nothing is shared: this instance acts on all it sees (a dry run)."""

    def acting(self) -> bool:
        return True

    def owns(self, service: ServiceKey) -> bool:
        return True

    def owner(self, service: ServiceKey) -> str:
        return "this instance"

    def epoch(self) -> int:
        return 0


@dataclass
class Service:
    key: ServiceKey
    replicas: dict[str, ContainerInfo] = field(default_factory=dict)  # running, by id
    exited: dict[str, ContainerInfo] = field(default_factory=dict)  # found exited, by id
    definer: ContainerInfo | None = None  # defines the service (its policy, its template)
    policy: PolicyResult = field(default_factory=lambda: PolicyResult(None))
    in_scope: bool = True
    retired: bool = False
    fight: str = ""  # why ebbflow paused it for a fight ("" when none)
    empty_since: float | None = None  # no running replica since then

    @property
    def count(self) -> int:
        return len(self.replicas)

    @property
    def managed(self) -> bool:
        """Something here may act on it: a scaling policy (labels or config), or a probe
        or healing label on one of its containers. Only such a service is ever claimed:
        a thousand plain containers cost no lock object and no engine call."""
        return self.policy.declared or any(
            is_managed(info.labels) for info in (*self.replicas.values(), *self.exited.values())
        )

    @property
    def nodes(self) -> set[str]:
        return {info.node for info in self.replicas.values()}

    def guests(self) -> list[ContainerInfo]:
        """Containers that carry the service's compose labels though neither compose nor
        ebbflow made them: monitored, never counted, cloned or removed."""
        return guests(list(self.replicas.values()), lambda i: i.labels)

    def counted(self, healthy: Callable[[str], bool] = lambda _node: True) -> int:
        """Replicas that count toward its desired count: on healthy nodes, not guests."""
        ignored = {info.id for info in self.guests()}
        return sum(1 for i in self.replicas.values() if healthy(i.node) and i.id not in ignored)


class ServiceCatalog:
    name = "catalog"

    def __init__(
        self,
        bus: Bus,
        rules: RulesConfig,
        scope: ScopeConfig,
        ownership: Ownership | None = None,
        clock: Callable[[], float] = time.time,
        announce: bool = True,
    ) -> None:
        self.bus = bus
        self.announce = announce  # log and publish policy changes (not in a one-off report)
        self.rules = rules
        self.scope = scope
        self.ownership: Ownership = ownership or Everyone()
        self.clock = clock
        self.services: dict[ServiceKey, Service] = {}
        self.member_of: dict[str, ServiceKey] = {}  # container id → service
        # Removed containers → their service, the newest GONE_KEPT: a decider handles a
        # removal after the catalog observed it, and must still learn whose it was.
        self.gone: collections.OrderedDict[str, ServiceKey] = collections.OrderedDict()
        self.by_name: dict[str, str] = {}  # container name → id, of running containers
        self.paused_names: frozenset[str] = frozenset()  # as the operator named them
        # node → (session, connected): discovery's connections, so a removal seen before
        # a loss is known for what it may be (an outage)
        self.engines: dict[str, tuple[int, bool]] = {}
        # What stops every action while it says so (the state file that cannot be written)
        self.blockers: list[Callable[[], str | None]] = []
        bus.observe(self.on_container, ContainerEvent)
        bus.observe(self.on_engine, EngineConnection)
        bus.observe(self.on_controls, OperatorControls)
        bus.observe(self.on_retired, ServiceRetired)
        bus.observe(self.on_fight, ServiceFight)

    # -- what is this service ------------------------------------------------------------
    def nodes_of(self, key: ServiceKey) -> set[str]:
        """The nodes a service's containers are on: its running replicas', else (nothing
        runs) its exited ones'."""
        service = self.services.get(key)
        if service is None:
            return set()
        return service.nodes or {info.node for info in service.exited.values()}

    def get(self, key: ServiceKey) -> Service | None:
        return self.services.get(key)

    def __iter__(self) -> Iterator[Service]:
        return iter(list(self.services.values()))

    def service_of(self, container_id: str) -> ServiceKey | None:
        """The service of a container, running, exited, or removed lately."""
        return self.member_of.get(container_id) or self.gone.get(container_id)

    def reads(self, container_id: str) -> bool:
        """A policy reads this container's series: its service has one (valid or not: a
        fixed label may make it valid at any time, and then it needs its windows full)."""
        key = self.service_of(container_id)
        service = self.services.get(key) if key is not None else None
        return service is not None and service.policy.declared

    def service_named(self, text: str) -> ServiceKey | None:
        """The running service a sample's `service` label names: `project/name` or `name`."""
        for key, service in self.services.items():
            if service.replicas and text in (str(key), key.name):
                return key
        return None

    def container_named(self, name: str) -> tuple[ServiceKey, ContainerInfo] | None:
        """The running container of that name and its service."""
        cid = self.by_name.get(name)
        key = self.member_of.get(cid) if cid else None
        service = self.services.get(key) if key else None
        if service is None or cid not in service.replicas:
            return None
        return service.key, service.replicas[cid]

    # -- may I act on it -----------------------------------------------------------------
    def paused(self, key: ServiceKey) -> bool:
        """Paused by the operator, or by ebbflow for a fight (until the operator resumes)."""
        service = self.services.get(key)
        if service is not None and service.fight:
            return True
        return any(names_service(text, key) for text in self.paused_names)

    def covers(self, info: ContainerInfo) -> bool:
        """The container itself lies in the scope (its own labels, not only its service's)."""
        return self.scope.covers(info.labels)

    def blocked(self) -> str | None:
        """Why no action may be taken on any service now (None: nothing stops them)."""
        for blocker in self.blockers:
            why = blocker()
            if why:
                return why
        return None

    def not_acting(self, key: ServiceKey) -> str | None:
        """Why this instance may not act on the service now; None when it may."""
        blocked = self.blocked()
        if blocked is not None:
            return blocked
        service = self.services.get(key)
        if service is not None and not service.in_scope:
            return "out of scope: monitored, never acted on"
        if service is not None and not service.managed:
            return "nothing to act on: no policy, probe or healing label"
        if self.paused(key):
            return "paused by the operator"
        if not self.ownership.owns(key):
            owner = self.ownership.owner(key)
            return f"not the owner: {owner or 'nobody yet'} acts on it"
        return None

    def may_act(self, key: ServiceKey) -> bool:
        return self.not_acting(key) is None

    def owns(self, key: ServiceKey) -> bool:
        """Ownership alone (a standby keeps its windows but decides nothing). A service
        outside the scope is no one's here: ownership is never even asked about it."""
        service = self.services.get(key)
        if service is not None and (not service.in_scope or not service.managed):
            return False
        return self.ownership.owns(key)

    def acting(self) -> bool:
        """Whether this instance acts at all now (it leads its scope)."""
        return self.ownership.acting()

    def owner(self, key: ServiceKey) -> str:
        return self.ownership.owner(key)

    def epoch(self) -> int:
        return self.ownership.epoch()

    # -- keeping it ------------------------------------------------------------------------
    def on_container(self, event: ContainerEvent) -> None:
        if event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            self._started(event.container)
        elif event.kind in (
            ContainerEventKind.DIE,
            ContainerEventKind.STOP,
            ContainerEventKind.DESTROY,
        ):
            self._ended(event.container, removed=event.kind is ContainerEventKind.DESTROY)
        self._expire()

    def _started(self, info: ContainerInfo) -> None:
        key = service_key(info.labels, info.name)
        service = self.services.get(key)
        if service is None:
            service = self.services[key] = Service(key)
        service.exited.pop(info.id, None)
        service.replicas[info.id] = info
        service.empty_since = None
        self.member_of[info.id] = key
        self.gone.pop(info.id, None)
        self.by_name[info.name] = info.id
        self._redefine(service)
        if service.in_scope and service.managed:
            self.ownership.owns(key)  # asked now, so it is claimed before it needs acting on

    def _ended(self, info: ContainerInfo, removed: bool) -> None:
        known = self.member_of.get(info.id)
        if known is None and not removed and info.labels:
            # Found exited at start (or exited before its start was read): a replica
            # that may need restoring, not a running one.
            new = service_key(info.labels, info.name)
            exited = self.services.setdefault(new, Service(new, empty_since=self.clock()))
            self._keep_exited(exited, info)
            if exited.definer is None:
                self._redefine(exited, [info])
            return
        service = self.services.get(known) if known is not None else None
        if service is None:
            return
        gone = service.replicas.pop(info.id, None)
        if removed:
            service.exited.pop(info.id, None)
            self._forget(info.id)
        elif gone is not None:
            self._keep_exited(service, gone)
        if self.by_name.get(info.name) == info.id:
            del self.by_name[info.name]
        if service.replicas:
            self._redefine(service)
        elif service.empty_since is None:
            service.empty_since = self.clock()

    def _forget(self, container_id: str) -> None:
        key = self.member_of.pop(container_id, None)
        if key is not None:
            self.gone[container_id] = key
            while len(self.gone) > GONE_KEPT:
                self.gone.popitem(last=False)

    def _keep_exited(self, service: Service, info: ContainerInfo) -> None:
        """An exited replica is remembered (a restore may start it again), the newest
        EXITED_KEPT of them: containers that exit and are never removed pile up."""
        self.member_of[info.id] = service.key
        service.exited[info.id] = info
        while len(service.exited) > EXITED_KEPT:
            oldest = next(iter(service.exited))
            del service.exited[oldest]
            if oldest not in service.replicas:
                self._forget(oldest)

    def _redefine(self, service: Service, among: list[ContainerInfo] | None = None) -> None:
        """The defining container may have changed: its policy and scope with it."""
        candidates = among or list(service.replicas.values())
        if not candidates:
            return
        definer = defining(candidates, lambda i: i.labels, lambda i: i.created)
        changed_labels = service.definer is None or definer.labels != service.definer.labels
        service.definer = definer
        service.in_scope = self.scope.covers(definer.labels)
        if changed_labels:
            self._parse(service, definer)

    def reconfigure(self, rules: RulesConfig) -> None:
        """New defaults and config policies (SIGHUP): every service's policy parsed again."""
        self.rules = rules
        for service in self.services.values():
            if service.definer is not None:
                self._parse(service, service.definer)

    def _parse(self, service: Service, definer: ContainerInfo) -> None:
        key = service.key
        labels = effective_labels(definer.labels, str(key), key.name, self.rules.policies)
        result = parse_policy(labels, self.rules)
        left_out = tuple(e for e in definer.label_errors if e.startswith(OWN_LABEL_PREFIXES))
        if left_out:  # a policy or probe label too long to read: the service is left alone
            result = PolicyResult(None, left_out + result.errors, declared=True)
        self._set_policy(service, result)

    def _set_policy(self, service: Service, result: PolicyResult) -> None:
        if result == service.policy:
            return
        was_invalid = bool(service.policy.errors)
        service.policy = result
        if not self.announce:
            return
        if result.errors:
            log.warning("service %s: policy disabled: %s", service.key, "; ".join(result.errors))
            self.bus.publish(PolicyProblem(service.key, result.errors, self.clock()))
            return
        if was_invalid:
            self.bus.publish(PolicyProblem(service.key, (), self.clock()))  # fixed
        if result.policy is not None:
            log.info(
                "service %s: policy %s",
                service.key,
                result.policy.model_dump(exclude_none=True, exclude_defaults=True),
            )

    def disable_policy(self, key: ServiceKey, error: str) -> None:
        """A service's evaluation raised: its policy is off, with the reason, as for a bad
        label, until its labels change."""
        service = self.services.get(key)
        if service is not None:
            self._set_policy(service, PolicyResult(None, (error,), declared=True))

    def _expire(self) -> None:
        """A service with no running replica for long is forgotten: a memory bound, since
        containers that come and go with new names are services of their own."""
        now = self.clock()
        for key, service in list(self.services.items()):
            if service.empty_since is not None and now - service.empty_since > EMPTY_KEPT:
                del self.services[key]
                for cid in service.exited:
                    self._forget(cid)

    def on_engine(self, event: EngineConnection) -> None:
        self.engines[event.node] = (event.session, event.connected)

    def session(self, node: str) -> int:
        """The engine's current connection (0 before the first); a removal seen in one
        session and read in another crossed an outage."""
        return self.engines.get(node, (0, False))[0]

    def connected(self, node: str) -> bool:
        return self.engines.get(node, (0, False))[1]

    def down(self, node: str) -> bool:
        """The engine was connected and is no longer (stopped, or its link cut)."""
        return node in self.engines and not self.engines[node][1]

    def on_controls(self, controls: OperatorControls) -> None:
        self.paused_names = controls.paused

    def on_retired(self, event: ServiceRetired) -> None:
        service = self.services.get(event.service)
        if service is not None:
            service.retired = event.retired

    def on_fight(self, event: ServiceFight) -> None:
        service = self.services.get(event.service)
        if service is not None:
            service.fight = event.reason if event.fighting else ""

    # -- telemetry ---------------------------------------------------------------------------
    def telemetry(self, now: float) -> Iterator[Sample]:
        yield SERVICES.sample(len(self.services), now)
        for key, service in self.services.items():
            if not service.policy.declared or not service.replicas:
                continue
            name = str(key)
            yield POLICY_VALID.sample(0.0 if service.policy.errors else 1.0, now, name)
            yield POLICY_ERRORS.sample(len(service.policy.errors), now, name)
            yield REPLICAS.sample(service.count, now, name)
            yield IN_SCOPE.sample(1.0 if service.in_scope else 0.0, now, name)
            if service.in_scope:
                yield OWNED.sample(1.0 if self.ownership.owns(key) else 0.0, now, name)
