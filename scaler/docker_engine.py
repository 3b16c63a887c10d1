"""Scaling on a plain Docker engine, the way `docker-compose scale` does it.

Out: clone a running replica under the next free number. In: stop and remove the newest
replicas. The action converges on the decision's target from what is running now, so
repeating it does no harm. Only containers selected by the service's own labels are ever
touched, and each is checked again before it is changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiodocker
from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.docker_api import DockerHandle
from ebbflow.model import ActionResult, Decision, ServiceKey
from ebbflow.plugins import Plugin, PluginContext
from ebbflow.services import is_member, member_filters

from .clone import clone_request, extra_networks, next_free_number, replica_name, replica_number

log = logging.getLogger("ebbflow.scaler.docker")

SCALABLE_KINDS = {"compose", "label"}


class DockerEngineConfig(FrozenModel):
    stop_timeout: int = Field(10, ge=0, description="Seconds a replica gets to stop on scale-in.")


class DockerEngineActuator:
    name = "docker"

    def __init__(self, docker: DockerHandle, clock: Callable[[], float], stop_timeout: int = 10):
        self.docker = docker
        self.clock = clock
        self.stop_timeout = stop_timeout

    def supports(self, service: ServiceKey) -> bool:
        return service.kind in SCALABLE_KINDS

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

    async def apply(self, decision: Decision) -> ActionResult:
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
            newest_first = list(reversed(running))[: len(running) - target]
            removed = [await self._remove(m) for m in newest_first]
            return self._result(decision, True, f"removed {', '.join(removed)}", removed)
        return self._result(decision, True, f"already at {target} replicas")

    async def _scale_out_one(
        self, service: ServiceKey, template: dict[str, Any], used: set[int]
    ) -> str:
        """Create and start one clone; `used` gains its number."""
        client = self.docker.client
        while True:
            number = next_free_number(used)
            name = replica_name(service, template["Name"].lstrip("/"), number)
            try:
                container = await client.containers.create(
                    clone_request(template, number), name=name
                )
                break
            except aiodocker.DockerError as err:
                if err.status != 409:  # 409: the name is taken outside the service
                    raise
                used.add(number)
        used.add(number)
        for network, endpoint in extra_networks(template).items():
            net = await client.networks.get(network)
            await net.connect({"Container": container.id, "EndpointConfig": endpoint})
        await container.start()
        log.info(
            "service %s: started %s (cloned from %s)", service, name, template["Name"].lstrip("/")
        )
        return name

    async def _remove(self, member: dict[str, Any]) -> str:
        container = await self.docker.client.containers.get(member["Id"])
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
