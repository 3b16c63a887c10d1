"""One active instance per scope: a lease held on the engine itself.

Two `ebbflow run` on one engine (one host or several, one state file or two) must not
both act. The lease is a chain of lock objects that Docker keeps atomic: containers
(created, never started) named `ebbflow-lease-<scope>-<epoch>`, one per `period`-second
epoch of the wall clock. Creating a name that exists fails (409), so exactly one instance
creates each epoch's object, and its owner label says who. The holder of epoch e creates
e+1 ahead of time; an instance that finds no object for the current epoch `grace`
seconds into it knows the holder is gone and creates it. A holder that dies is therefore
replaced within two epochs and the grace (12 s with the defaults). An instance acts only
while it owns the object of the current epoch, checked every tick; any doubt (the engine
does not answer) means it does not act. The others run as hot standbys: they collect,
serve `/metrics` and keep their windows warm, and report `ebbflow_leader 0`.

Hosts that share an engine must agree on the time to within `grace`. Scopes that overlap
are different leases: give instances on one engine scopes that do not overlap.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import tarfile
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiodocker

from ebbflow.bus import Bus
from ebbflow.claims import Claims
from ebbflow.config import LeaseConfig, ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.logs import describe_error
from ebbflow.metrics import Desc
from ebbflow.model import OwnershipChange, Sample, ServiceKey
from ebbflow.names import instance_name

log = logging.getLogger("ebbflow.lease")

IMAGE = "ebbflow/lease:1"  # an empty image made on the engine: lock objects never run
LEASE_LABEL = "ebbflow.lease"
OWNER_LABEL = "ebbflow.lease.owner"
RELEASE_TIMEOUT = 5.0  # seconds a clean stop spends removing the lease objects


LEADER = Desc(
    "ebbflow_leader",
    "1 while this instance holds the lease for its scope and may act; 0 on standby.",
    "gauge",
    ("lease",),
)
TRANSITIONS = Desc(
    "ebbflow_leader_transitions_total",
    "Times this instance became leader or lost the lease.",
    "counter",
    ("lease",),
)
OVERLAPS = Desc(
    "ebbflow_scope_overlaps",
    "Services in this instance's scope that another live instance owns (scopes overlap).",
)


def lease_id(scope: ScopeConfig, name: str = "") -> str:
    return hashlib.sha256(f"{scope.describe()}\n{name}".encode()).hexdigest()[:12]


def empty_rootfs() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w"):
        pass
    return buffer.getvalue()


class Lease:
    name = "lease"

    def __init__(
        self,
        docker: DockerHandle,
        scope: ScopeConfig,
        config: LeaseConfig,
        clock: Callable[[], float] = time.time,
        bus: Bus | None = None,
        node: str = "",
        owner: str = "",
    ) -> None:
        self.bus = bus  # where changes of leadership are announced (OwnershipChange)
        self.docker = docker
        self.scope = scope
        self.config = config
        self.clock = clock
        self.id = lease_id(scope, config.name)
        # One of several, one per engine (ebbflow/lease_engines.py): named by its node in
        # /metrics (`lease="<id>@<node>"`), /readyz and the logs.
        self.node = node
        self.label = f"{self.id}@{node}" if node else self.id
        self.owner = owner or instance_name()
        self.owned: tuple[int, int] | None = None  # (first, last) epochs whose objects we own
        self._cleaned = -1  # the epoch whose older objects were last removed
        self.leader = ""  # who holds the current epoch, as far as we know
        self.transitions = 0
        self.problem: str | None = None  # why the lease cannot be read or renewed now
        self.claims = Claims(docker, scope, self.owner, self.id, self._alive, IMAGE, clock)

    def name_of(self, epoch: int) -> str:
        return f"ebbflow-lease-{self.id}-{epoch}"

    def epoch(self, now: float) -> int:
        return int(now // self.config.period)

    def owns(self, epoch: int) -> bool:
        return self.owned is not None and self.owned[0] <= epoch <= self.owned[1]

    def may_act(self) -> bool:
        """Only while we own the current epoch's object (always, with the lease off)."""
        return not self.config.enabled or self.owns(self.epoch(self.clock()))

    # -- the engine's lock objects ---------------------------------------------------------
    async def _ensure_image(self) -> None:
        try:
            await self.docker.client.images.inspect(IMAGE)
            return
        except aiodocker.DockerError as err:
            if err.status != 404:
                raise
        repo, tag = IMAGE.split(":")
        await self.docker.client._query_json(
            "images/create",
            "POST",
            params={"fromSrc": "-", "repo": repo, "tag": tag},
            data=empty_rootfs(),
            headers={"Content-Type": "application/x-tar"},
        )

    async def _create(self, epoch: int) -> bool:
        """True when we made the epoch's object; False when it exists (someone's)."""
        labels = {
            **self.scope.labels,  # so whatever cleans up the scope's containers finds it
            LEASE_LABEL: self.id,
            OWNER_LABEL: self.owner,
            "ebbflow.lease.scope": self.scope.describe()[:200],
        }
        config: dict[str, Any] = {
            "Image": IMAGE,
            "Cmd": ["lease"],
            "Labels": labels,
            "NetworkDisabled": True,
        }
        try:
            await self.docker.client.containers.create(config, name=self.name_of(epoch))
        except aiodocker.DockerError as err:
            if err.status == 409:
                return False
            if err.status == 404:  # the image went away: make it again, then retry once
                await self._ensure_image()
                return await self._create(epoch)
            raise
        return True

    async def _alive(self, lease: str, owner: str, epoch: int) -> bool:
        """Whether `owner` holds lease `lease` now: its object of this epoch or the last."""
        for at in (epoch, epoch - 1):
            try:
                found = await self.docker.client.containers.get(f"ebbflow-lease-{lease}-{at}")
            except aiodocker.DockerError as err:
                if err.status == 404:
                    continue
                raise
            labels = (found._container.get("Config") or {}).get("Labels") or {}
            if labels.get(OWNER_LABEL) == owner:
                return True
        return False

    async def _owner_of(self, epoch: int) -> str | None:
        try:
            container = await self.docker.client.containers.get(self.name_of(epoch))
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise
        labels = (container._container.get("Config") or {}).get("Labels") or {}
        return str(labels.get(OWNER_LABEL, "?"))

    async def _claim(self, epoch: int) -> str | None:
        """Owner of the epoch's object after trying to make it ours."""
        if await self._create(epoch):
            return self.owner
        return await self._owner_of(epoch)

    async def _clean(self, epoch: int) -> None:
        """Our objects of epochs that are over: the chain stays two or three long."""
        listed = await self.docker.client.containers.list(
            all=True, filters={"label": [f"{LEASE_LABEL}={self.id}"]}
        )
        for container in listed:
            name = str(container._container.get("Names", ["/"])[0]).lstrip("/")
            old = name.rsplit("-", 1)[-1]
            if old.isdigit() and int(old) < epoch - 1:
                try:
                    await container.delete(force=True)
                except aiodocker.DockerError as err:
                    if err.status != 404:
                        raise

    # -- the loop ----------------------------------------------------------------------------
    async def tick(self) -> None:
        now = self.clock()
        epoch = self.epoch(now)
        if self.owns(epoch):  # holding: make the next epoch ours ahead of time
            if not self.owns(epoch + 1) and await self._claim(epoch + 1) == self.owner:
                assert self.owned is not None
                self.owned = (self.owned[0], epoch + 1)
            if self._cleaned != epoch:  # once an epoch: a listing each tick was its own cost
                await self._clean(epoch)
                self._cleaned = epoch
            await self._claim_services(epoch)
            return
        current = await self._owner_of(epoch)
        if current is None and now - epoch * self.config.period >= self.config.grace:
            current = await self._claim(epoch)  # nobody holds it: take it over
        if current == self.owner:
            ahead = await self._claim(epoch + 1) == self.owner
            self._became_leader(epoch, epoch + 1 if ahead else epoch)
        elif current is not None:
            self._standby(current)
        elif self.owned is not None:
            self._standby("nobody yet")

    async def _claim_services(self, epoch: int) -> None:
        """One owner per service: the services asked about are claimed (ebbflow/claims.py);
        what was newly claimed is announced, so parts waiting for it act now."""
        before = {s for s, c in self.claims.claims.items() if c.ours}
        await self.claims.tick(epoch)
        gained = {s for s, c in self.claims.claims.items() if c.ours} - before
        if gained:
            self._announce(True, f"claimed {len(gained)} service(s)")

    def _became_leader(self, first: int, last: int) -> None:
        was = self.owned
        self.owned = (first, last)
        self.leader = self.owner
        if was is None:
            self.transitions += 1
            log.info("became leader for %s (lease %s)", self.scope.describe(), self.label)
            self._announce(True, "won the lease")

    def _announce(self, acting: bool, reason: str) -> None:
        if self.bus is not None:
            self.bus.publish(OwnershipChange(acting, self.leader, reason, self.clock()))

    def _standby(self, owner: str) -> None:
        lost = self.owned is not None
        if lost:
            self.transitions += 1
            log.warning("lost the lease %s to %s: no more actions from here", self.label, owner)
            self.owned = None
        if owner != self.leader:
            log.info("standing by for %s (lease %s)", owner, self.label)
        self.leader = owner
        if lost:
            self.claims.lose_all()
            self._announce(False, f"lost the lease to {owner}")

    async def run(self) -> None:
        if not self.config.enabled:
            await asyncio.Event().wait()  # nothing to hold; stays up for the supervisor
        await self._ensure_image()
        period = self.config.period
        try:
            while True:
                try:
                    async with asyncio.timeout(max(1.0, period / 2)):
                        await self.tick()
                    self.problem = None
                except (aiodocker.DockerError, OSError, TimeoutError) as err:
                    self.problem = f"cannot read or renew the lease: {describe_error(err)}"
                    if self.owned is not None:
                        log.warning("cannot renew the lease (%r): not acting until it can", err)
                        self.transitions += 1
                        self.owned = None  # in doubt: never act
                        self.claims.lose_all()
                        self._announce(False, f"cannot renew the lease: {err!r}")
                await asyncio.sleep(period / 5)
        finally:
            if self.owned is not None:  # hand over at once instead of after two epochs
                self.owned = None
                await asyncio.shield(self._release())

    async def _release(self) -> None:
        """Every object of ours goes, the epochs that are over too: a clean stop leaves
        nothing on the engine. Best effort and bounded: a stop never waits on an engine
        that does not answer (the chain then lapses by itself within two epochs)."""
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await self.claims.release_all()
                listed = await self.docker.client.containers.list(
                    all=True,
                    filters={"label": [f"{LEASE_LABEL}={self.id}", f"{OWNER_LABEL}={self.owner}"]},
                )
                for container in listed:
                    try:
                        await container.delete(force=True)
                    except aiodocker.DockerError as err:
                        if err.status != 404:
                            raise
        except (aiodocker.DockerError, OSError, TimeoutError) as err:
            log.warning("could not remove this instance's lease objects (%r)", err)

    def dependencies(self) -> dict[str, str | None]:
        if not self.config.enabled:
            return {}
        return {f"lease {self.node}" if self.node else "lease": self.problem}

    @property
    def ownership(self) -> LeaseOwnership:
        return LeaseOwnership(self)

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield LEADER.sample(1.0 if self.may_act() else 0.0, now, self.label)
        yield TRANSITIONS.sample(self.transitions, now, self.label)
        if not self.node:  # several: their owner sums them (one series)
            yield OVERLAPS.sample(self.claims.overlaps, now)


class LeaseOwnership:
    """The lease as the catalog's `Ownership`: the leader of a scope owns each service of
    it it has claimed (one owner per service, however scopes overlap)."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease

    def acting(self) -> bool:
        return self.lease.may_act()

    def owns(self, service: ServiceKey) -> bool:
        if not self.lease.config.enabled:
            return True
        claimed = self.lease.claims.owns(service)  # also: asked, so it is claimed next tick
        return self.lease.may_act() and claimed

    def owner(self, service: ServiceKey) -> str:
        if not self.lease.may_act():
            return self.lease.leader
        return self.lease.claims.holder(service) or self.lease.owner

    def epoch(self) -> int:
        return self.lease.transitions
