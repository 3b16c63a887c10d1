"""One owner per service, whatever the scopes say.

The lease (ebbflow/lease.py) makes one instance of a scope the active one; but two scopes
written differently may cover one service (`projects: [shop]` and `labels: {team: a}`),
and their two leaders would both act on it. So the active instance also claims each
service before it acts on it: a lock object on the engine per service,
`ebbflow-claim-<hash of the service>`, whose labels name its owner and the owner's lease.
Docker keeps the name unique, so one instance makes it; the others see whose it is.

A claim is the owner's while the owner holds its lease: its lease object of the current
(or previous) epoch names it. A claim whose owner no longer holds its lease (it stopped,
died, or lost the lease to a standby) is stale: removed and taken. An instance that finds
a service claimed by another live instance does not act on it, and warns once, naming both
instances: an overlap of scopes is the operator's to resolve.

A service is claimed when this instance first asks whether it owns it (the first answer
is no; the claim follows within a tick), and released when nobody asked for a while, on a
lost lease, and on a clean stop.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiodocker

from ebbflow.config import ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.model import ServiceKey
from ebbflow.services import format_service_key

log = logging.getLogger("ebbflow.claims")

CLAIM_LABEL = "ebbflow.claim"
CLAIM_OWNER = "ebbflow.claim.owner"
CLAIM_LEASE = "ebbflow.claim.lease"
CLAIM_SCOPE = "ebbflow.claim.scope"
FORGET_AFTER = 120.0  # seconds a claim nobody asked about is kept


def claim_name(service: ServiceKey) -> str:
    digest = hashlib.sha256(format_service_key(service).encode()).hexdigest()[:16]
    return f"ebbflow-claim-{digest}"


@dataclass
class Claim:
    ours: bool = False
    holder: str = ""  # who holds it, when not us
    holder_scope: str = ""
    checked_epoch: int = -1  # when it was last looked at
    asked: float = 0.0  # when this instance last asked whether it owns it
    warned: bool = False


class Claims:
    """The claims of one instance, kept by its lease's loop while it leads."""

    def __init__(
        self,
        docker: DockerHandle,
        scope: ScopeConfig,
        owner: str,
        lease_id: str,
        lease_alive: Callable[[str, str, int], Any],
        image: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.docker = docker
        self.scope = scope
        self.owner = owner
        self.lease_id = lease_id
        self.lease_alive = lease_alive  # async (lease id, owner, epoch) → bool
        self.image = image
        self.clock = clock
        self.claims: dict[ServiceKey, Claim] = {}
        self.overlaps = 0

    def owns(self, service: ServiceKey) -> bool:
        claim = self.claims.setdefault(service, Claim())
        claim.asked = self.clock()
        return claim.ours

    def holder(self, service: ServiceKey) -> str:
        claim = self.claims.get(service)
        return claim.holder if claim is not None and not claim.ours else ""

    async def tick(self, epoch: int) -> None:
        """Claim what was asked about, look again at others' claims once an epoch, release
        what nobody asked about for a while."""
        now = self.clock()
        for service, claim in list(self.claims.items()):
            if now - claim.asked > FORGET_AFTER:
                await self._release(service, claim)
                del self.claims[service]
            elif not claim.ours and claim.checked_epoch < epoch:
                await self._claim(service, claim, epoch)

    async def _claim(self, service: ServiceKey, claim: Claim, epoch: int) -> None:
        claim.checked_epoch = epoch
        if await self._create(service):
            claim.ours, claim.holder = True, ""
            return
        labels = await self._labels(service)
        if labels is None:
            return  # gone meanwhile: tried again next epoch
        holder = labels.get(CLAIM_OWNER, "?")
        if holder == self.owner:
            claim.ours = True
            return
        if not await self.lease_alive(labels.get(CLAIM_LEASE, ""), holder, epoch):
            log.info("service %s: the claim of %s is stale; taking it", service, holder)
            await self._remove(service)
            claim.ours = await self._create(service)
            return
        claim.holder, claim.holder_scope = holder, labels.get(CLAIM_SCOPE, "")
        if not claim.warned:
            claim.warned = True
            self.overlaps += 1
            log.warning(
                "service %s is in the scope of two instances: %s (scope %s) owns it; this "
                "instance %s (scope %s) does not act on it: make the scopes disjoint",
                service,
                holder,
                claim.holder_scope or "?",
                self.owner,
                self.scope.describe(),
            )

    async def release_all(self) -> None:
        for service, claim in list(self.claims.items()):
            await self._release(service, claim)
            claim.ours = False

    def lose_all(self) -> None:
        """The lease was lost: nothing is ours any more (the next leader takes them)."""
        for claim in self.claims.values():
            claim.ours = False
            claim.checked_epoch = -1

    async def _release(self, service: ServiceKey, claim: Claim) -> None:
        if claim.ours:
            labels = await self._labels(service)
            if labels is not None and labels.get(CLAIM_OWNER) == self.owner:
                await self._remove(service)

    # -- the engine's objects --------------------------------------------------------------
    async def _create(self, service: ServiceKey) -> bool:
        labels = {
            **self.scope.labels,  # so whatever cleans up the scope's containers finds it
            CLAIM_LABEL: format_service_key(service)[:200],
            CLAIM_OWNER: self.owner,
            CLAIM_LEASE: self.lease_id,
            CLAIM_SCOPE: self.scope.describe()[:200],
        }
        config: dict[str, Any] = {
            "Image": self.image,
            "Cmd": ["claim"],
            "Labels": labels,
            "NetworkDisabled": True,
        }
        try:
            await self.docker.client.containers.create(config, name=claim_name(service))
        except aiodocker.DockerError as err:
            if err.status == 409:
                return False
            raise
        return True

    async def _labels(self, service: ServiceKey) -> dict[str, str] | None:
        try:
            found = await self.docker.client.containers.get(claim_name(service))
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise
        return dict((found._container.get("Config") or {}).get("Labels") or {})

    async def _remove(self, service: ServiceKey) -> None:
        try:
            container = self.docker.client.containers.container(claim_name(service))
            await container.delete(force=True)
        except aiodocker.DockerError as err:
            if err.status != 404:
                raise
