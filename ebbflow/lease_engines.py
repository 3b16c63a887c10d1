"""Plain engines on several hosts: one lease per engine acted on.

With `docker.nodes` naming several engines and `lease.backend: engine`, the lock objects of
ebbflow/lease.py are kept on every engine, each a lease of its own. An instance acts on an
engine only while it holds that engine's lease: the docker actuator asks `Nodes.held`
before every call that changes something on a node (ebbflow/nodes.py), so a placement,
a removal, a restart or a migration's target needs the lease of the engine it touches, and
a migration off a failed engine needs no lease of the failed one. Losing one host loses
its lease only; actions on the other engines go on.

A service is this instance's to decide on while it holds the lease of every healthy node
its containers are on (running, or exited when nothing runs; the first healthy node when
it has none at all), and its per-service claim on each (ebbflow/claims.py). Two instances
cut off from each other, each seeing the other's engines down, can each own a service that
spans both sides; each then acts only on the engines it holds. Plain engines have no
quorum to settle that: Swarm's raft lease (ebbflow/lease_swarm.py) does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from ebbflow.bus import Bus
from ebbflow.config import LeaseConfig, ScopeConfig
from ebbflow.lease import OVERLAPS, Lease
from ebbflow.logs import describe_error
from ebbflow.model import Sample, ServiceKey
from ebbflow.names import instance_name
from ebbflow.nodes import Nodes

log = logging.getLogger("ebbflow.lease")

RETRY_INITIAL, RETRY_MAX = 1.0, 30.0  # seconds before a lease whose run failed runs again


class EngineLeases:
    """One `Lease` per node, each run on its own: an engine that fails costs its lease only."""

    name = "lease"

    def __init__(
        self,
        nodes: Nodes,
        scope: ScopeConfig,
        config: LeaseConfig,
        clock: Callable[[], float] = time.time,
        bus: Bus | None = None,
    ) -> None:
        self.nodes = nodes
        self.owner = instance_name()  # one name on every engine: the same instance
        self.leases = {
            node: Lease(handle, scope, config, clock, bus, node=node, owner=self.owner)
            for node, handle in nodes.handles.items()
        }
        self.crashed: dict[str, str] = {}  # node → why its lease's run failed last
        self._ownership = EngineLeaseOwnership(self)  # one: the app sets its nodes_of

    def holds(self, node: str) -> bool:
        lease = self.leases.get(node)
        return lease is not None and lease.may_act()

    def held(self) -> list[str]:
        return [node for node in self.leases if self.holds(node)]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for node, lease in self.leases.items():
                group.create_task(self._keep(node, lease), name=f"lease {node}")

    async def _keep(self, node: str, lease: Lease) -> None:
        """The node's lease, restarted with backoff when its run fails (its engine gone at
        start, say): never the others'."""
        delay = RETRY_INITIAL
        while True:
            started = time.monotonic()
            try:
                await lease.run()
                return
            except Exception as err:
                why = describe_error(err)
                if self.crashed.get(node) != why:
                    log.warning("node %s: the lease stopped (%s); again in %.0f s", node, why,
                                delay)  # fmt: skip
                self.crashed[node] = why
                lease.problem = f"cannot read or renew the lease: {why}"
            if time.monotonic() - started > RETRY_MAX:
                delay = RETRY_INITIAL
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def dependencies(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for lease in self.leases.values():
            found |= lease.dependencies()
        return found

    @property
    def ownership(self) -> EngineLeaseOwnership:
        return self._ownership

    def telemetry(self, now: float) -> Iterable[Sample]:
        for lease in self.leases.values():
            yield from lease.telemetry(now)
        yield OVERLAPS.sample(max(lease.claims.overlaps for lease in self.leases.values()), now)


class EngineLeaseOwnership:
    """Per-engine leases as the catalog's `Ownership`. `nodes_of` (set by the app, from the
    catalog) says which nodes a service's containers are on."""

    def __init__(self, leases: EngineLeases) -> None:
        self.leases = leases
        self.nodes_of: Callable[[ServiceKey], set[str]] = lambda _key: set()

    def _needed(self, service: ServiceKey) -> list[str]:
        nodes = self.leases.nodes
        needed = [n for n in sorted(self.nodes_of(service)) if nodes.healthy(n)]
        if needed:
            return needed
        healthy = nodes.healthy_nodes()
        return healthy[:1]  # a service with nothing anywhere: the first healthy node's

    def acting(self) -> bool:
        return bool(self.leases.held())

    def owns(self, service: ServiceKey) -> bool:
        needed = self._needed(service)
        leases = self.leases.leases
        # every claim is asked (so each is made next tick), then all must be held
        claimed = [leases[n].claims.owns(service) for n in needed if n in leases]
        return bool(needed) and all(self.leases.holds(n) for n in needed) and all(claimed)

    def owner(self, service: ServiceKey) -> str:
        needed = self._needed(service)
        if needed and all(self.leases.holds(n) for n in needed):
            return f"{self.leases.owner} (the leases of {', '.join(needed)})"
        others = [
            f"{n}: {self._holder(n)}"
            for n in needed
            if n in self.leases.leases and not self.leases.holds(n)
        ]
        return "; ".join(others)

    def _holder(self, node: str) -> str:
        leader = self.leases.leases[node].leader
        if leader == self.leases.owner:  # ours until it lapsed (an engine that went away)
            return "nobody (this instance's lease lapsed)"
        return leader or "nobody yet"

    def epoch(self) -> int:
        return sum(lease.transitions for lease in self.leases.leases.values())
