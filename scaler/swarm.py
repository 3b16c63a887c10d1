"""Scaling and healing on Docker Swarm: service updates, never container calls.

Swarm keeps a service at its replica count and replaces tasks that die, so ebbflow only
changes the spec: `Mode.Replicated.Replicas` to scale, `TaskTemplate.ForceUpdate` to
restart (a forced update replaces the service's tasks, as `docker service update --force`
does). Each update names the service version it read, so an update made by someone else
in between is never overwritten: Swarm refuses it and ebbflow reads the spec again.

A node at fault is drained (Swarm moves its tasks to the others), and made active again
when it recovers, but only when ebbflow drained it: the `ebbflow.drained` node label says
so. A node an operator drained stays as the operator left it.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from typing import Any

import aiodocker
from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.docker_api import DockerHandle
from ebbflow.model import (
    ActionResult,
    ContainerInfo,
    Decision,
    HealingAction,
    NodeHealthChange,
    ServiceKey,
)
from ebbflow.nodes import Nodes
from ebbflow.plugins import Plugin, PluginContext

log = logging.getLogger("ebbflow.scaler.swarm")

SpecChange = Callable[[dict[str, Any]], str]


class SwarmConfig(FrozenModel):
    update_attempts: int = Field(
        3, ge=1, description="Tries when another client updates the service at the same time."
    )


DRAINED_LABEL = "ebbflow.drained"


class SwarmActuator:
    name = "swarm"

    def __init__(self, nodes: Nodes, clock: Callable[[], float], attempts: int = 3):
        self.nodes = nodes
        self.docker = nodes.default
        self.clock = clock
        self.attempts = attempts
        self._swarm_node_ids: dict[str, str] = {}  # ebbflow node → its Swarm node ID

    def supports(self, service: ServiceKey) -> bool:
        return service.kind == "swarm"

    def can_heal(self, service: ServiceKey) -> bool:
        return service.kind == "swarm"

    def stopped_by_us(self, container_id: str) -> bool:
        return False  # Swarm replaces what stops; ebbflow never stops a task itself

    def acted_on(self, container_id: str) -> bool:
        return False

    async def apply(
        self, decision: Decision, unhealthy: frozenset[str] = frozenset()
    ) -> ActionResult:
        """Swarm picks which tasks go on scale-in; `unhealthy` cannot steer it."""
        target = decision.to_replicas

        def set_replicas(spec: dict[str, Any]) -> str:
            replicated = (spec.get("Mode") or {}).get("Replicated")
            if replicated is None:
                raise RuntimeError("a global service runs one task per node: it cannot be scaled")
            before = replicated.get("Replicas", 1)
            if target < before and before != decision.from_replicas:
                # The decision saw another count than the Swarm keeps: some replicas were
                # not seen (a node lost, its tasks not yet moved). Never in on part of it.
                raise RuntimeError(
                    f"the spec has {before} replicas, the decision saw "
                    f"{decision.from_replicas}: not scaled in on part of the service"
                )
            replicated["Replicas"] = target
            return f"replicas {before} → {target}"

        detail = await self.update(decision.service.name, set_replicas)
        return ActionResult(decision, True, detail, self.clock())

    async def heal(
        self, service: ServiceKey, container: ContainerInfo, action: HealingAction
    ) -> str:
        def force_update(spec: dict[str, Any]) -> str:
            template = spec.setdefault("TaskTemplate", {})
            template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
            return f"forced an update of {service.name} (its tasks are replaced)"

        return await self.update(service.name, force_update)

    async def node_changed(self, change: NodeHealthChange, dry_run: bool) -> str | None:
        node_id = await self._swarm_node_id(change.node)
        if node_id is None:
            return None
        client = self._manager_for(change.node).client
        current = await client._query_json(f"nodes/{node_id}")
        spec = copy.deepcopy(current["Spec"])
        labels = spec.setdefault("Labels", {})
        hostname = (current.get("Description") or {}).get("Hostname", node_id[:12])
        if not change.healthy:
            if spec.get("Availability") == "drain":
                return None  # already drained, by us or by an operator
            spec["Availability"] = "drain"
            labels[DRAINED_LABEL] = change.reason
            detail = f"drained Swarm node {hostname}: {change.reason}"
        else:
            if DRAINED_LABEL not in labels:
                return None
            spec["Availability"] = "active"
            del labels[DRAINED_LABEL]
            detail = f"made Swarm node {hostname} active again"
        if dry_run:
            return f"dry run: would have {detail}"
        await client._query_json(
            f"nodes/{node_id}/update",
            method="POST",
            params={"version": current["Version"]["Index"]},
            data=json.dumps(spec),
        )
        log.info("%s", detail)
        return detail

    async def _swarm_node_id(self, node: str) -> str | None:
        """The Swarm node behind an ebbflow node; remembered, as a node at fault may not
        answer. None when its engine is in no Swarm."""
        if node not in self._swarm_node_ids:
            try:
                info = await self.nodes.handle(node).client.system.info()
            except (aiodocker.DockerError, OSError, TimeoutError):
                return None
            swarm = info.get("Swarm") or {}
            if swarm.get("LocalNodeState") != "active" or not swarm.get("NodeID"):
                return None
            self._swarm_node_ids[node] = swarm["NodeID"]
        return self._swarm_node_ids[node]

    def _manager_for(self, node: str) -> DockerHandle:
        """Another node's engine when the node's own does not answer."""
        if self.nodes.healthy(node) or not self.nodes.several:
            return self.nodes.handle(node)
        healthy = self.nodes.healthy_nodes()
        return self.nodes.handle(healthy[0]) if healthy else self.nodes.handle(node)

    async def update(self, name: str, change: SpecChange) -> str:
        client = self.docker.client
        for attempt in range(1, self.attempts + 1):
            current = await client.services.inspect(name)
            spec = copy.deepcopy(current["Spec"])
            detail = change(spec)
            try:
                await client._query_json(
                    f"services/{current['ID']}/update",
                    method="POST",
                    params={"version": current["Version"]["Index"]},
                    data=json.dumps(spec),
                )
            except aiodocker.DockerError as err:
                if "out of sequence" not in str(err.message) or attempt == self.attempts:
                    raise
                log.info("service %s changed under us; reading it again", name)
                continue
            log.info("swarm service %s: %s", name, detail)
            return detail
        raise AssertionError("unreachable")


def create(ctx: PluginContext, config: SwarmConfig) -> SwarmActuator:
    return SwarmActuator(ctx.nodes, ctx.clock, config.update_attempts)


plugin: Plugin[SwarmConfig, SwarmActuator] = Plugin("swarm", SwarmConfig, create)
