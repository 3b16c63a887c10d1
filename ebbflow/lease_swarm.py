"""One acting decider per scope across a Swarm: a lease kept in the Swarm's own raft store.

The lock is one Swarm config object, `ebbflow-lease-<id>`, whose labels name the holder
and the lease's epoch. Swarm keeps a version index on every object and refuses an update
that names an older one ("update out of sequence", HTTP 500; measured on the lab), so an
update is a compare-and-swap: of two deciders that read version V, one writes V+1 and the
other is refused. Raft replicates the object on every manager, so the lease survives the
loss of any one of three managers (writes resumed 11.6 s after the raft leader's engine
was sent SIGTERM on the lab; the holder rides that out, see RENEWALS).

- The holder renews every `ttl / 6` seconds (a CAS on the version it last read) and
  acts only until `ttl × 0.9` after the start of its last successful renewal, by its own
  monotonic clock; any doubt (no answer, a refused CAS) means it stops acting.
- A standby watches the version. Once it has seen the same version for a whole `ttl` by
  its own monotonic clock, the holder has stopped acting (its deadline lies before that),
  and the standby takes the lease with a CAS, bumping the epoch. Two standbys racing for
  it: the CAS lets one through. Clocks of different hosts are never compared.
- A clean stop releases the lease (holder ""), so a standby takes it at once.

Hand-over bound: `ttl` plus one renewal interval after the holder's last renewal, plus a
raft election when the holder's node was the raft leader (defaults: 30 + 5 s, ~12 s).
The epoch is the fencing token: it is shown in `/metrics` and named in every change.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiodocker

from ebbflow.bus import Bus
from ebbflow.config import LeaseConfig, ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.docker_events import read_bounded
from ebbflow.lease import LEADER, TRANSITIONS, lease_id
from ebbflow.logs import describe_error
from ebbflow.metrics import Desc
from ebbflow.model import OwnershipChange, Sample, ServiceKey
from ebbflow.names import instance_name

log = logging.getLogger("ebbflow.lease")

HOLDER = "ebbflow.lease.holder"
EPOCH = "ebbflow.lease.epoch"
LEASE = "ebbflow.lease"
DATA = base64.b64encode(b"ebbflow lease\n").decode()
ANSWER_LIMIT = 64 * 1024  # bytes: one config object is a few hundred
SAFETY = 0.9  # the holder stops acting at this share of the ttl: scheduling, clock rates
RENEWALS = 6  # renewals per ttl: the holder rides out an outage of the store of up to
# ttl × (SAFETY − 1/RENEWALS), 22 s with the default ttl of 30 s, against a raft election
# measured at 11.6 s on the lab (from SIGTERM of the raft leader's engine to a write)

EPOCH_METRIC = Desc(
    "ebbflow_lease_epoch",
    "The lease's epoch as last read (it grows by one at every change of holder).",
    "gauge",
    ("lease",),
)


class RefusedError(Exception):
    """The Swarm refused the compare-and-swap: someone changed the lease first."""


class SwarmLease:
    name = "lease"

    def __init__(
        self,
        docker: DockerHandle,
        scope: ScopeConfig,
        config: LeaseConfig,
        bus: Bus | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.docker = docker
        self.scope = scope
        self.config = config
        self.bus = bus
        self.clock = clock
        self.monotonic = monotonic
        self.id = lease_id(scope, config.name)
        self.object = f"ebbflow-lease-{self.id}"
        self.owner = instance_name()
        self.deadline: float | None = None  # monotonic time until which we may act
        self.version: int | None = None  # the object's version as last read or written
        self.seen_since = 0.0  # monotonic time we first saw `version` (as a standby)
        self.epoch = 0
        self.leader = ""
        self.transitions = 0
        self.problem: str | None = None

    @property
    def ttl(self) -> float:
        return self.config.ttl

    def may_act(self) -> bool:
        return not self.config.enabled or (
            self.deadline is not None and self.monotonic() < self.deadline
        )

    # -- the Swarm's API ---------------------------------------------------------------------
    async def _call(
        self, path: str, method: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        async with self.docker.client._query(
            path,
            method,
            params=params or {},
            data=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json"},
        ) as response:
            answer = await read_bounded(response, ANSWER_LIMIT, f"{self.docker.display}: {path}")
        return json.loads(answer) if answer else None

    async def _read(self) -> tuple[int, dict[str, str]] | None:
        try:
            found = await self._call(f"configs/{self.object}", "GET")
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise
        labels = (found.get("Spec") or {}).get("Labels") or {}
        return int(found["Version"]["Index"]), {str(k): str(v) for k, v in labels.items()}

    def _spec(self, holder: str, epoch: int) -> dict[str, Any]:
        labels = {**self.scope.labels, LEASE: self.id, HOLDER: holder, EPOCH: str(epoch)}
        return {"Name": self.object, "Labels": labels, "Data": DATA}

    async def _write(self, holder: str, epoch: int) -> None:
        """A compare-and-swap on the version last read; RefusedError when it is not current."""
        try:
            await self._call(
                f"configs/{self.object}/update",
                "POST",
                {"version": str(self.version)},
                self._spec(holder, epoch),
            )
        except aiodocker.DockerError as err:
            if err.status == 500 and "out of sequence" in str(err.message):
                raise RefusedError(str(err.message)) from None
            if err.status == 404:
                raise RefusedError("the lease object was removed") from None
            raise
        # the index is the raft store's, shared by every object: the next is read, not guessed
        self.version = None

    async def _create(self) -> bool:
        try:
            await self._call("configs/create", "POST", body=self._spec(self.owner, 1))
        except aiodocker.DockerError as err:
            if err.status == 409:
                return False
            raise
        return True

    # -- the loop ----------------------------------------------------------------------------
    async def tick(self) -> None:
        started = self.monotonic()  # before: our own deadline counts from here
        read = await self._read()
        observed = self.monotonic()  # after: any write we read was made before this
        if read is None:
            if await self._create():
                self._won(started, 1, "made the lease")
            return
        version, labels = read
        holder, epoch = labels.get(HOLDER, ""), int(labels.get(EPOCH, "0") or 0)
        self.epoch = epoch
        if version != self.version:
            self.version, self.seen_since = version, observed
        if holder == self.owner:
            try:
                await self._write(self.owner, epoch)
            except RefusedError as err:
                self._lost(f"renewal refused ({err})")
                return
            self._won(started, epoch, "renewed")
            return
        if self.deadline is not None:
            self._lost(f"the lease is held by {holder or 'nobody'} now")
        self._follow(holder)
        if holder and observed - self.seen_since < self.ttl:
            return  # the holder renewed within a ttl, as far as we have watched
        try:
            await self._write(self.owner, epoch + 1)
        except RefusedError:
            return  # another standby was first; read again next tick
        why = "took over a released lease" if not holder else f"{holder} stopped renewing"
        self._won(started, epoch + 1, why)

    def _won(self, started: float, epoch: int, why: str) -> None:
        was = self.deadline is not None and self.monotonic() < self.deadline
        self.deadline = started + self.ttl * SAFETY
        self.epoch = epoch
        self.leader = self.owner
        if not was:
            self.transitions += 1
            log.info("holding the Swarm lease %s, epoch %d: %s", self.object, epoch, why)
            self._announce(True, f"won the lease (epoch {epoch}): {why}")

    def _lost(self, why: str) -> None:
        if self.deadline is None:
            return
        self.deadline = None
        self.transitions += 1
        log.warning("lost the Swarm lease %s: %s; no more actions from here", self.object, why)
        self._announce(False, f"lost the lease: {why}")

    def _follow(self, holder: str) -> None:
        if holder != self.leader:
            log.info("standing by for %s (Swarm lease %s)", holder or "nobody", self.object)
        self.leader = holder

    def _announce(self, acting: bool, reason: str) -> None:
        if self.bus is not None:
            self.bus.publish(OwnershipChange(acting, self.leader, reason, self.clock()))

    async def run(self) -> None:
        if not self.config.enabled:
            await asyncio.Event().wait()  # nothing to hold; stays up for the supervisor
        interval = self.ttl / RENEWALS
        try:
            while True:
                try:
                    async with asyncio.timeout(interval):
                        await self.tick()
                    self.problem = None
                except (aiodocker.DockerError, OSError, TimeoutError, ValueError) as err:
                    self.problem = f"cannot read or renew the Swarm lease: {describe_error(err)}"
                    log.debug("%s", self.problem)
                if self.deadline is not None and not self.may_act():
                    self._lost("not renewed within its ttl")
                # after a failure, try again soon: a raft election ends at an unknown moment
                await asyncio.sleep(interval if self.problem is None else min(1.0, interval))
        finally:
            if self.may_act():
                await asyncio.shield(self._release())

    async def _release(self) -> None:
        """Holder "": a standby takes the lease at its next tick instead of after a ttl.
        Bounded; a stop never waits on a Swarm that does not answer."""
        self.deadline = None
        try:
            async with asyncio.timeout(5.0):
                read = await self._read()
                if read is None or read[1].get(HOLDER) != self.owner:
                    return  # not ours any more: nothing to release
                self.version = read[0]
                await self._write("", self.epoch)
        except (aiodocker.DockerError, OSError, TimeoutError, RefusedError) as err:
            log.warning("could not release the Swarm lease (%s)", describe_error(err))

    def dependencies(self) -> dict[str, str | None]:
        return {"lease": self.problem} if self.config.enabled else {}

    @property
    def ownership(self) -> SwarmOwnership:
        return SwarmOwnership(self)

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield LEADER.sample(1.0 if self.may_act() else 0.0, now, self.id)
        yield TRANSITIONS.sample(self.transitions, now, self.id)
        yield EPOCH_METRIC.sample(self.epoch, now, self.id)


class SwarmOwnership:
    """The Swarm lease as the catalog's `Ownership`: its holder acts on every service of
    the scope (one decider acts; the others stand by)."""

    def __init__(self, lease: SwarmLease) -> None:
        self.lease = lease

    def acting(self) -> bool:
        return self.lease.may_act()

    def owns(self, service: ServiceKey) -> bool:
        return self.lease.may_act()

    def owner(self, service: ServiceKey) -> str:
        return self.lease.owner if self.lease.may_act() else self.lease.leader

    def epoch(self) -> int:
        return self.lease.transitions
