"""Scaling on a plain Docker engine, the way `docker-compose scale` does it.

Out: clone a running replica under the next free number, on the healthy node with the
fewest replicas of the service (spread). In: stop and remove unhealthy replicas first,
then the newest. A container whose node is at fault is recreated on another node from
its last inspect output, and the original removed once its node answers again. Healing
restarts a container in place, or replaces it with a fresh clone under the same name and
number. The action converges on the decision's target from what is running now, so
repeating it does no harm. Only containers selected by the service's own labels are ever
touched, and each is checked again before it is changed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiodocker
from aiodocker.containers import DockerContainer
from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.docker_api import parse_docker_time
from ebbflow.logs import describe_error
from ebbflow.model import ActionResult, ContainerInfo, Decision, HealingAction, ServiceKey
from ebbflow.nodes import Nodes
from ebbflow.plugins import Plugin, PluginContext
from ebbflow.services import (
    CREATED_BY_LABEL,
    MADE_AT_LABEL,
    configuration,
    defining,
    guests,
    is_member,
    member_filters,
)

from .clone import clone_request, extra_networks, next_free_number, replica_name, replica_number

log = logging.getLogger("ebbflow.scaler.docker")

SCALABLE_KINDS = {"compose", "label"}
HEALABLE_KINDS = {"compose", "label", "container"}


class DockerEngineConfig(FrozenModel):
    stop_timeout: int = Field(10, ge=0, description="Seconds a replica gets to stop on scale-in.")
    start_check: float = Field(
        1.0,
        ge=0,
        description="Seconds after starting a container before ebbflow checks it still runs: "
        "one that exits at once is a failed action, with its exit reason.",
    )


@dataclass(frozen=True)
class Member:
    """One container of a service, as inspected on its node."""

    node: str
    inspect: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.inspect.get("Name", "")).lstrip("/")

    @property
    def id(self) -> str:
        return str(self.inspect["Id"])

    @property
    def running(self) -> bool:
        return bool(self.inspect["State"].get("Running"))

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.inspect.get("Config") or {}).get("Labels") or {})

    def sick(self, unhealthy: frozenset[str]) -> bool:
        health = (self.inspect["State"].get("Health") or {}).get("Status")
        return self.name in unhealthy or health == "unhealthy"


def created_at(member: Member) -> float:
    """When it was made: ebbflow's mark on the copies it made (siblings made together in
    number order), else Docker's creation time (its text trims trailing zeros, so it does
    not sort as text). A mark on a container ebbflow did not make, or one that is no
    finite number ("nan" would leave the order undefined), is not read."""
    labels = member.labels
    if CREATED_BY_LABEL in labels:
        with contextlib.suppress(ValueError):
            if math.isfinite(mark := float(labels.get(MADE_AT_LABEL, ""))):
                return mark
    return parse_docker_time(str(member.inspect.get("Created", "")))


def sibling_marks(count: int, now: float) -> list[float]:
    """Made-at marks for copies made together: wall time, as the engine's creation times
    they sort beside, one whole microsecond apart. The label keeps six decimals, so marks
    a float step of 1e-6 apart could print alike (about one scale-out by 3 in 11)."""
    first = round(now * 1e6)
    return [(first + index) / 1e6 for index in range(count)]


def age_order(member: Member) -> tuple[float, int]:
    """Oldest first; replicas made in the same microsecond in number order."""
    return created_at(member), replica_number(member.name, member.labels) or 0


class MadeButFailedError(RuntimeError):
    """A container was made and a later step failed: the message names the container, so
    the action's record does."""


ACTED_MEMORY = 300.0  # seconds a stop or removal of ours is remembered


class DockerEngineActuator:
    name = "docker"

    def __init__(
        self,
        nodes: Nodes,
        clock: Callable[[], float],
        stop_timeout: int = 10,
        start_check: float = 1.0,
    ):
        self.nodes = nodes
        self.clock = clock
        self.stop_timeout = stop_timeout
        self.start_check = start_check
        self._stopping: set[str] = set()  # containers whose next exit is ours
        self._acted: dict[str, float] = {}  # container id → when we stopped or removed it

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

    def acted_on(self, container_id: str) -> bool:
        now = time.monotonic()
        for cid in [c for c, at in self._acted.items() if now - at > ACTED_MEMORY]:
            del self._acted[cid]
        return container_id in self._acted

    def _acting_on(self, container_id: str) -> None:
        self._acted[container_id] = time.monotonic()

    async def members(self, service: ServiceKey) -> list[Member]:
        """Every container of the service on every healthy node, stopped ones included."""
        found = await asyncio.gather(
            *(self._members_on(node, service) for node in self.nodes.healthy_nodes())
        )
        return [member for members in found for member in members]

    async def _members_on(self, node: str, service: ServiceKey) -> list[Member]:
        client = self.nodes.handles[node].client
        listed = await client.containers.list(all=True, filters=member_filters(service))
        members = []
        for item in listed:
            member = Member(node, (await client.containers.get(item.id))._container)
            if is_member(service, member.labels, member.name):
                members.append(member)
        return members

    def placement(self, running: list[Member], exclude: str | None = None) -> str:
        """Spread: the healthy node with the fewest running containers of the service,
        among those whose engine this instance may act on (a lease per engine)."""
        candidates = [n for n in self.nodes.actable_nodes() if n != exclude]
        if not candidates:
            raise RuntimeError("no healthy node whose engine this instance holds to place on")
        load = collections.Counter(m.node for m in running)
        return min(candidates, key=lambda node: load[node])  # ties: the first configured

    async def apply(
        self, decision: Decision, unhealthy: frozenset[str] = frozenset()
    ) -> ActionResult:
        service = decision.service
        members = await self.members(service)
        running = sorted((m for m in members if m.running), key=age_order)
        ignored = {m.id for m in guests(running, lambda m: m.labels)}
        running = [m for m in running if m.id not in ignored]  # a guest is never touched
        target = decision.to_replicas
        if decision.origin == "rollover":
            return await self._roll_one(decision, members, running)
        if len(running) < target and not running:
            return await self._restore(decision, members)
        if len(running) < target:
            return await self._scale_out(decision, members, running)
        if len(running) > target:
            # The unhealthy first, then copies of an old configuration, then the newest.
            outdated = {m.id for m in self._outdated(running)}
            ordered = sorted(
                reversed(running), key=lambda m: (not m.sick(unhealthy), m.id not in outdated)
            )
            excess = len(running) - target
            doomed = [m for m in ordered if self.nodes.held(m.node)][:excess]
            removed = [await self._remove(m) for m in doomed]
            if len(doomed) < excess:  # the rest run on engines another instance holds
                left = f"; {excess - len(doomed)} more on nodes whose lease is another's"
                return self._result(decision, False, f"removed {', '.join(removed)}{left}", removed)
            return self._result(decision, True, f"removed {', '.join(removed)}", removed)
        return self._result(decision, True, f"already at {target} replicas")

    async def _scale_out(
        self, decision: Decision, members: list[Member], running: list[Member]
    ) -> ActionResult:
        service, target = decision.service, decision.to_replicas
        used = {n for m in members if (n := replica_number(m.name, m.labels))}
        used |= self._numbers_on_failed_nodes(service)
        template = defining(running, lambda m: m.labels, created_at)
        # Placed and numbered in order, then made together: a scale-out by N costs about one
        # create, not N (a create copies the image's layers). The made-at mark keeps them in
        # number order, so "newest" still means the highest number.
        plan = []
        for at in sibling_marks(target - len(running), time.time()):
            node = self.placement(running)  # each new replica counted where it goes
            running.append(Member(node, {"Name": "", "State": {"Running": True}}))
            plan.append((node, at))
        makes = await asyncio.gather(
            *(self._make_numbered(service, template.inspect, node, used, "scale-out", at)
              for node, at in plan),
            return_exceptions=True,
        )  # fmt: skip
        made: list[tuple[str, str, DockerContainer]] = []  # (node, name, container)
        failed: list[BaseException] = []
        for (node, _), outcome in zip(plan, makes, strict=True):
            if isinstance(outcome, Exception):  # the others are started all the same
                failed.append(outcome)
            elif isinstance(outcome, BaseException):  # a cancellation is not a failure
                raise outcome
            else:
                made.append((node, *outcome))
        # ... and started together: a scale-out by N costs about one start, not N.
        results = await asyncio.gather(
            *(self._start(service, template.inspect, n, name, "scale-out", c)
              for n, name, c in made),
            return_exceptions=True,
        )  # fmt: skip
        created = [(n, name) for (n, name, _), r in zip(made, results, strict=True) if r is None]
        failed = [r for r in results if isinstance(r, BaseException)] + failed
        try:
            if failed:
                raise failed[0]
            exited = await self._exited_at_once(created)
        except Exception as err:  # what was made is in the record, whatever failed after
            names = [name for _, name in created]
            if not names:
                raise
            why = describe_error(err)
            return self._result(decision, False, f"started {', '.join(names)}; then {why}", names)
        names = [name for _, name in created]
        if exited:
            return self._result(decision, False, f"started {', '.join(names)}; {exited}", names)
        return self._result(decision, True, f"started {', '.join(names)}", names)

    async def _restore(self, decision: Decision, members: list[Member]) -> ActionResult:
        """No replica runs (an engine restart, a host reboot): the stopped ones are started
        again, the service's own first (oldest first), before any clone is made."""
        stopped = [m for m in members if not m.running]
        ignored = {m.id for m in guests(stopped, lambda m: m.labels)}
        stopped = sorted((m for m in stopped if m.id not in ignored), key=age_order)
        if not stopped:
            return self._result(
                decision, False, "no running replica to clone, and none stopped to start again"
            )
        stopped = [m for m in stopped if self.nodes.held(m.node)]
        if not stopped:
            return self._result(
                decision, False, "the stopped replicas are on engines another instance holds"
            )
        started: list[tuple[str, str]] = []
        for member in stopped[: decision.to_replicas]:
            self.nodes.check_held(member.node)  # still, at the moment of acting
            container = await self.nodes.handle(member.node).client.containers.get(member.id)
            await container.start()
            log.info("service %s: started %s again", decision.service, member.name)
            started.append((member.node, member.name))
        names = [name for _, name in started]
        exited = await self._exited_at_once(started)
        if exited:
            return self._result(decision, False, f"started again {', '.join(names)}; {exited}")
        more = ""
        if len(started) < decision.to_replicas:
            more = f"; {decision.to_replicas - len(started)} more by the next reconcile"
        return self._result(decision, True, f"started again {', '.join(names)}{more}", names)

    @staticmethod
    def _outdated(running: list[Member]) -> list[Member]:
        """ebbflow's copies of another configuration than the service's defining one."""
        if not running:
            return []
        current = configuration(defining(running, lambda m: m.labels, created_at).inspect)
        return [
            m
            for m in running
            if CREATED_BY_LABEL in m.labels and configuration(m.inspect) != current
        ]

    async def _roll_one(
        self, decision: Decision, members: list[Member], running: list[Member]
    ) -> ActionResult:
        """Replace the oldest copy of an old configuration: the new copy is started before
        the old one is removed, so the count never dips."""
        outdated = self._outdated(running)
        if not outdated:
            return self._result(decision, True, "every replica runs the current configuration")
        template = defining(running, lambda m: m.labels, created_at)
        if CREATED_BY_LABEL in template.labels:
            return self._result(decision, True, "no configuration but ebbflow's copies left")
        old = outdated[0]
        used = {n for m in members if (n := replica_number(m.name, m.labels))}
        used |= self._numbers_on_failed_nodes(decision.service)
        node = self.placement([m for m in running if m.id != old.id])
        name, made = await self._make_numbered(
            decision.service, template.inspect, node, used, "rollover"
        )
        await self._start(decision.service, template.inspect, node, name, "rollover", made)
        try:
            if exited := await self._exited_at_once([(node, name)]):
                return self._result(decision, False, f"kept {old.name}: {exited}", [name])
            await self._remove(old)
        except Exception as err:  # what was made is in the record, whatever failed after
            why = describe_error(err)
            return self._result(decision, False, f"started {name}; then {why}", [name])
        return self._result(
            decision,
            True,
            f"replaced {old.name} ({configuration(old.inspect)}) with {name} "
            f"({configuration(template.inspect)})",
            [name, old.name],
        )

    def _numbers_on_failed_nodes(self, service: ServiceKey) -> set[int]:
        """Replica numbers last seen on nodes at fault: their containers count as gone, but
        their names come back with their node, so new replicas do not take them."""
        numbers = set()
        for node, handle in self.nodes.handles.items():
            if self.nodes.healthy(node):
                continue
            for inspect in handle.last_inspect.values():
                member = Member(node, inspect)
                number = replica_number(member.name, member.labels)
                if number and is_member(service, member.labels, member.name):
                    numbers.add(number)
        return numbers

    async def heal(
        self, service: ServiceKey, container: ContainerInfo, action: HealingAction
    ) -> str:
        if action == "migrate":
            return await self._migrate(service, container)
        if action == "remove_leftover":
            return await self._remove_leftover(container)
        node = container.node
        current = await self._inspect(node, container.name)
        if action == "restart" and current is not None:
            self.nodes.check_held(node)
            handle = await self.nodes.handle(node).client.containers.get(current.id)
            if current.running:
                self._stopping.add(current.id)
            self._acting_on(current.id)  # a restart emits a stop event too
            await handle.restart(
                t=self.stop_timeout, timeout=self.stop_timeout + self.nodes.handle(node).timeout
            )
            return f"restarted {container.name}"
        # Replace, or restart a container that is gone: a fresh clone under its own name,
        # from itself when it still exists, else from a running sibling, else from what
        # it was when last seen.
        template = current or await self._sibling(service)
        if template is None:
            remembered = self.nodes.handle(node).template(container.id)
            if remembered is None:
                raise RuntimeError(f"{container.name} is gone and no replica is left to clone")
            template = Member(node, remembered)
        own_labels = current.labels if current is not None else {}
        number = replica_number(container.name, own_labels) or 1
        if current is not None:
            await self._remove(current)
        await self._create(service, template.inspect, node, container.name, number, "replace")
        source = "" if template is current else f" (cloned from {template.name})"
        if template.id == container.id:
            source = " (from its last inspect)"
        return f"replaced {container.name} with a new container{source}"

    async def _exited_at_once(self, started: list[tuple[str, str]]) -> str:
        """After the start check, why any of the replicas just added is not running ("" when
        all run): a scale-out whose replica crash-loops is a failed action, not "ok".
        (Healing's restarts and replacements are judged by the next exit, as a crash.)"""
        if not started:
            return ""
        await asyncio.sleep(self.start_check)
        reasons = []
        for node, name in started:
            current = await self._inspect(node, name)
            if current is not None and not current.running:  # gone: removed by someone else
                why = await self.nodes.handle(node).exit_reason(current.id)
                reasons.append(f"{name} exited at once: {why or 'it is gone'}")
        return "; ".join(reasons)

    async def _sibling(self, service: ServiceKey) -> Member | None:
        return next((m for m in await self.members(service) if m.running), None)

    async def _migrate(self, service: ServiceKey, container: ContainerInfo) -> str:
        """Recreate a container of a node at fault on the healthy node with the fewest of
        its service, from its last inspect (its engine may not answer) or a sibling."""
        members = await self.members(service)
        node = self.placement([m for m in members if m.running], exclude=container.node)
        cached = self.nodes.handle(container.node).template(container.id)
        template = Member(container.node, cached) if cached else await self._sibling(service)
        if template is None:
            raise RuntimeError(f"nothing to recreate {container.name} from")
        taken = {m.name for m in members if m.node != container.node}
        used = {n for m in members if (n := replica_number(m.name, m.labels))}
        own_labels = template.labels if cached else {}
        number = replica_number(container.name, own_labels) or next_free_number(used)
        name = container.name
        if name in taken:
            number = next_free_number(used)
            name = replica_name(service, template.name, number)
        await self._create(service, template.inspect, node, name, number, "migrate")
        renamed = f" as {name}" if name != container.name else ""
        return f"recreated {container.name} on node {node}{renamed}"

    async def _remove_leftover(self, container: ContainerInfo) -> str:
        """The original of a migrated container, on a node that answers again."""
        self.nodes.check_held(container.node)
        try:
            found = await self.nodes.handle(container.node).client.containers.get(container.id)
        except aiodocker.DockerError as err:
            if err.status == 404:
                return f"{container.name} was already gone from node {container.node}"
            raise
        await self._remove(Member(container.node, found._container))
        return f"removed the leftover {container.name} from node {container.node}"

    async def _inspect(self, node: str, name: str) -> Member | None:
        try:
            found = await self.nodes.handle(node).client.containers.get(name)
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise
        return Member(node, found._container)

    async def _make_numbered(
        self,
        service: ServiceKey,
        template: dict[str, Any],
        node: str,
        used: set[int],
        why: str = "scale-out",
        made_at: float | None = None,
    ) -> tuple[str, DockerContainer]:
        """Make (not start) one clone under the next free number; `used` gains it (before
        the engine is asked, so clones made together never take the same number)."""
        while True:
            number = next_free_number(used)
            used.add(number)
            name = replica_name(service, template["Name"].lstrip("/"), number)
            try:
                return name, await self._make(template, node, name, number, why, made_at)
            except aiodocker.DockerError as err:
                if err.status != 409:  # 409: the name is taken outside the service
                    raise

    async def _create(
        self,
        service: ServiceKey,
        template: dict[str, Any],
        node: str,
        name: str,
        number: int,
        why: str,
    ) -> None:
        container = await self._make(template, node, name, number, why)
        await self._start(service, template, node, name, why, container)

    async def _make(
        self,
        template: dict[str, Any],
        node: str,
        name: str,
        number: int,
        why: str,
        made_at: float | None = None,
    ) -> DockerContainer:
        self.nodes.check_held(node)
        client = self.nodes.handle(node).client
        request = clone_request(template, number, why, time.time() if made_at is None else made_at)
        return await client.containers.create(request, name=name)

    async def _start(
        self,
        service: ServiceKey,
        template: dict[str, Any],
        node: str,
        name: str,
        why: str,
        container: DockerContainer,
    ) -> None:
        client = self.nodes.handle(node).client
        try:
            for network, endpoint in extra_networks(template).items():
                net = await client.networks.get(network)
                await net.connect({"Container": container.id, "EndpointConfig": endpoint})
            await container.start()
        except Exception as err:  # made, not started: the record names it all the same
            raise MadeButFailedError(f"made {name}, then {describe_error(err)}") from err
        log.info(
            "service %s: started %s%s (%s, from %s)",
            service,
            name,
            f" on node {node}" if node else "",
            why,
            template["Name"].lstrip("/"),
        )

    async def _remove(self, member: Member) -> str:
        self.nodes.check_held(member.node)
        handle = self.nodes.handle(member.node)
        container = await handle.client.containers.get(member.id)
        if member.running:
            self._stopping.add(member.id)
        self._acting_on(member.id)
        await container.stop(t=self.stop_timeout, timeout=self.stop_timeout + handle.timeout)
        await container.delete()
        log.info("removed %s%s", member.name, f" from node {member.node}" if member.node else "")
        return member.name

    def _result(
        self, decision: Decision, ok: bool, detail: str, names: list[str] | None = None
    ) -> ActionResult:
        return ActionResult(decision, ok, detail, self.clock(), tuple(names or ()))


def create(ctx: PluginContext, config: DockerEngineConfig) -> DockerEngineActuator:
    return DockerEngineActuator(ctx.nodes, ctx.clock, config.stop_timeout, config.start_check)


plugin: Plugin[DockerEngineConfig, DockerEngineActuator] = Plugin(
    "docker", DockerEngineConfig, create
)
