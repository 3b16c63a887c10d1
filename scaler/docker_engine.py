"""Scaling on a plain Docker engine, the way `docker-compose scale` does it.

Out: clone a running replica under the next free number. In: stop and remove unhealthy
replicas first, then the newest. Healing restarts a container in place, or replaces it
with a fresh clone under the same name and number. The action converges on the
decision's target from what is running now, so repeating it does no harm. Only
containers selected by the service's own labels are ever touched, and each is checked
again before it is changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiodocker
from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.docker_api import DockerHandle
from ebbflow.model import ActionResult, ContainerInfo, Decision, HealingAction, ServiceKey
from ebbflow.plugins import Plugin, PluginContext
from ebbflow.services import is_member, member_filters

from .clone import clone_request, extra_networks, next_free_number, replica_name, replica_number

log = logging.getLogger("ebbflow.scaler.docker")

SCALABLE_KINDS = {"compose", "label"}
HEALABLE_KINDS = {"compose", "label", "container"}


class DockerEngineConfig(FrozenModel):
    stop_timeout: int = Field(10, ge=0, description="Seconds a replica gets to stop on scale-in.")


class DockerEngineActuator:
    name = "docker"

    def __init__(self, docker: DockerHandle, clock: Callable[[], float], stop_timeout: int = 10):
        self.docker = docker
        self.clock = clock
        self.stop_timeout = stop_timeout
        self._stopping: set[str] = set()  # containers whose next exit is ours

    def supports(self, service: ServiceKey) -> bool:
        return service.kind in SCALABLE_KINDS

    def can_heal(self, service: ServiceKey) -> bool:
        return service.kind in HEALABLE_KINDS

    def stopped_by_us(self, container_id: str) -> bool:
        """Each stop answers for one exit: the next one may be a crash again."""
        if container_id in self._stopping:
            self._stopping.discard(container_id)
            return True
        return False

    async def members(self, service: ServiceKey) -> list[dict[str, Any]]:
        """Inspect output of every container of the service, stopped ones included."""
        listed = await self.docker.client.containers.list(all=True, filters=member_filters(service))
        members = []
        for item in listed:
            inspect = (await self.docker.client.containers.get(item.id))._container
            name = inspect.get("Name", "").lstrip("/")
            if is_member(service, (inspect.get("Config") or {}).get("Labels") or {}, name):
                members.append(inspect)
        return members

    async def apply(
        self, decision: Decision, unhealthy: frozenset[str] = frozenset()
    ) -> ActionResult:
        service = decision.service
        members = await self.members(service)
        running = sorted(
            (m for m in members if m["State"].get("Running")), key=lambda m: m["Created"]
        )
        target = decision.to_replicas
        if len(running) < target:
            if not running:
                return self._result(decision, False, "no running replica to clone")
            used = {
                n
                for m in members
                if (
                    n := replica_number(
                        m["Name"].lstrip("/"), (m.get("Config") or {}).get("Labels") or {}
                    )
                )
            }
            created = [
                await self._scale_out_one(service, running[0], used)
                for _ in range(target - len(running))
            ]
            return self._result(decision, True, f"started {', '.join(created)}", created)
        if len(running) > target:

            def sick(member: dict[str, Any]) -> bool:
                health = (member["State"].get("Health") or {}).get("Status")
                return member["Name"].lstrip("/") in unhealthy or health == "unhealthy"

            newest_first = list(reversed(running))
            ordered = [m for m in newest_first if sick(m)] + [
                m for m in newest_first if not sick(m)
            ]
            doomed = ordered[: len(running) - target]
            removed = [await self._remove(m) for m in doomed]
            return self._result(decision, True, f"removed {', '.join(removed)}", removed)
        return self._result(decision, True, f"already at {target} replicas")

    async def heal(
        self, service: ServiceKey, container: ContainerInfo, action: HealingAction
    ) -> str:
        current = await self._inspect(container.name)
        if action == "restart" and current is not None:
            handle = await self.docker.client.containers.get(current["Id"])
            if current["State"].get("Running"):
                self._stopping.add(current["Id"])
            await handle.restart(
                t=self.stop_timeout, timeout=self.stop_timeout + self.docker.timeout
            )
            return f"restarted {container.name}"
        # Replace, or restart a container that is gone: a fresh clone under its own name,
        # from itself when it still exists, else from a running sibling.
        template = current
        if template is None:
            running = [m for m in await self.members(service) if m["State"].get("Running")]
            if not running:
                raise RuntimeError(f"{container.name} is gone and no replica is left to clone")
            template = running[0]
        labels = (template.get("Config") or {}).get("Labels") or {}
        number = replica_number(container.name, labels) or 1
        if current is not None:
            await self._remove(current)
        await self._create(service, template, container.name, number, "replace")
        source = "" if template is current else f" (cloned from {template['Name'].lstrip('/')})"
        return f"replaced {container.name} with a new container{source}"

    async def _inspect(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = (await self.docker.client.containers.get(name))._container
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise
        return found

    async def _scale_out_one(
        self, service: ServiceKey, template: dict[str, Any], used: set[int]
    ) -> str:
        """Create and start one clone; `used` gains its number."""
        while True:
            number = next_free_number(used)
            name = replica_name(service, template["Name"].lstrip("/"), number)
            try:
                await self._create(service, template, name, number, "scale-out")
                break
            except aiodocker.DockerError as err:
                if err.status != 409:  # 409: the name is taken outside the service
                    raise
                used.add(number)
        used.add(number)
        return name

    async def _create(
        self, service: ServiceKey, template: dict[str, Any], name: str, number: int, why: str
    ) -> None:
        client = self.docker.client
        container = await client.containers.create(clone_request(template, number, why), name=name)
        for network, endpoint in extra_networks(template).items():
            net = await client.networks.get(network)
            await net.connect({"Container": container.id, "EndpointConfig": endpoint})
        await container.start()
        log.info(
            "service %s: started %s (%s, from %s)",
            service,
            name,
            why,
            template["Name"].lstrip("/"),
        )

    async def _remove(self, member: dict[str, Any]) -> str:
        container = await self.docker.client.containers.get(member["Id"])
        if member["State"].get("Running"):
            self._stopping.add(member["Id"])
        await container.stop(t=self.stop_timeout, timeout=self.stop_timeout + self.docker.timeout)
        await container.delete()
        name = str(member["Name"]).lstrip("/")
        log.info("removed %s", name)
        return name

    def _result(
        self, decision: Decision, ok: bool, detail: str, names: list[str] | None = None
    ) -> ActionResult:
        return ActionResult(decision, ok, detail, self.clock(), tuple(names or ()))


def create(ctx: PluginContext, config: DockerEngineConfig) -> DockerEngineActuator:
    return DockerEngineActuator(ctx.docker, ctx.clock, config.stop_timeout)


plugin: Plugin[DockerEngineConfig, DockerEngineActuator] = Plugin(
    "docker", DockerEngineConfig, create
)
