"""The engines ebbflow drives, as nodes, and which of them can take work.

With no `docker.nodes` configured there is one engine (`docker.host`) and nothing here
changes how ebbflow behaves. With several, each node is an engine address; a node is
unhealthy while its engine stops answering (`node_failures` checks in a row) or while its
node metrics stay past the pressure limits, and the healer moves its containers away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ebbflow.bus import Bus
from ebbflow.config import ConfigError, DockerConfig, EngineTLS, PressureLimits
from ebbflow.docker_api import DockerHandle, tls_context
from ebbflow.metrics import Desc
from ebbflow.model import ContainerInfo, NodeHealthChange, Sample, SampleBatch, labels_of
from ebbflow.names import NODE_CPU_PERCENT, NODE_MEMORY_PERCENT

log = logging.getLogger("ebbflow.nodes")

PRESSURE_METRICS = {"memory_percent": NODE_MEMORY_PERCENT, "cpu_percent": NODE_CPU_PERCENT}
PRESSURE_NAMES = frozenset(PRESSURE_METRICS.values())


NODE_HEALTHY = Desc(
    "ebbflow_node_healthy",
    "1 while the node takes work: its engine answers and no pressure limit is passed.",
    "gauge",
    ("node",),
)
ENGINE_UP = Desc(
    "ebbflow_node_engine_up", "1 while the node's Docker engine answers.", "gauge", ("node",)
)


@dataclass
class NodeState:
    """Why a node is unhealthy, by cause ("engine", "pressure"); healthy when empty."""

    faults: dict[str, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.faults


class NotHeldError(RuntimeError):
    """An action on a node whose engine's lease this instance does not hold."""


def tls_from_environment(environ: Mapping[str, str]) -> EngineTLS | None:
    """DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (default ~/.docker), as the docker CLI reads
    them: built here rather than by aiodocker, so the certificate is followed as the
    config's `docker.tls` is (ebbflow/engine_certs.py)."""
    if not environ.get("DOCKER_TLS_VERIFY"):
        return None
    folder = environ.get("DOCKER_CERT_PATH") or str(Path.home() / ".docker")
    try:
        return EngineTLS(cert_path=Path(folder))
    except ValidationError as err:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        raise ConfigError(f"DOCKER_TLS_VERIFY with DOCKER_CERT_PATH={folder}: {problems}") from None


class Nodes:
    """Engine handles by node name, and each node's health."""

    def __init__(self, handles: Iterable[DockerHandle]) -> None:
        self.handles = {handle.node: handle for handle in handles}
        if not self.handles:
            raise ValueError("no Docker engine configured")
        self.default = next(iter(self.handles.values()))
        self.states = {name: NodeState() for name in self.handles}
        # Whether this instance may change anything on a node's engine now: with a lease
        # per engine (ebbflow/lease_engines.py), only while it holds that engine's lease.
        self.held: Callable[[str], bool] = lambda _node: True
        self.tls: ssl.SSLContext | None = None  # the one context every tcp:// engine uses
        self.tls_config: EngineTLS | None = None  # ... and where its files are

    @classmethod
    def from_config(cls, config: DockerConfig) -> Nodes:
        if not config.nodes:
            nodes = cls([DockerHandle(config.host, config.timeout, limits=config.limits)])
        else:
            nodes = cls(
                DockerHandle(address, config.timeout, name, config.limits)
                for name, address in config.nodes.items()
            )
        remote = any(not handle.local for handle in nodes.handles.values())
        tls_config = config.tls or (tls_from_environment(os.environ) if remote else None)
        if tls_config is not None:
            nodes.tls, nodes.tls_config = tls_context(tls_config), tls_config
            for handle in nodes.handles.values():
                handle.tls = nodes.tls
        return nodes

    @property
    def several(self) -> bool:
        return len(self.handles) > 1

    def handle(self, node: str) -> DockerHandle:
        return self.handles.get(node, self.default)

    def healthy(self, node: str) -> bool:
        state = self.states.get(node)
        return state is None or state.healthy

    def healthy_nodes(self) -> list[str]:
        return [name for name, state in self.states.items() if state.healthy]

    def actable_nodes(self) -> list[str]:
        """Healthy nodes whose engine this instance may act on now."""
        return [name for name in self.healthy_nodes() if self.held(name)]

    def check_held(self, node: str) -> None:
        """Before every call that changes something on a node: refused, naming why, when
        another instance holds its engine's lease."""
        if not self.held(node):
            raise NotHeldError(f"node {node}: another instance holds its engine's lease")

    def fault(self, node: str) -> str:
        return "; ".join(self.states[node].faults.values()) if node in self.states else ""

    def set_fault(self, node: str, cause: str, reason: str | None) -> bool:
        """Set (or with None clear) one cause of a node's fault; True when its health flipped."""
        state = self.states[node]
        was = state.healthy
        if reason is None:
            state.faults.pop(cause, None)
        else:
            state.faults[cause] = reason
        return was != state.healthy

    async def running_containers(self) -> list[ContainerInfo]:
        """Running containers of every node that answers; a node that does not is skipped
        (and logged by the monitor), unless none answers."""
        handles = [h for h in self.handles.values() if self.healthy(h.node)] or [self.default]
        found = await asyncio.gather(
            *(h.running_containers() for h in handles), return_exceptions=True
        )
        lists = [f for f in found if not isinstance(f, BaseException)]
        if not lists:
            error = found[0]
            assert isinstance(error, BaseException)
            raise error
        return [info for infos in lists for info in infos]

    async def close(self) -> None:
        for handle in self.handles.values():
            await handle.close()


class NodeMonitor:
    """Checks that each node's engine answers (with several nodes: with one, there is
    nowhere to move containers to) and watches the pressure limits. Publishes a
    NodeHealthChange when a node's health flips, and each node's first verdict: what was
    left to do for a node when ebbflow stopped is done once it is known healthy."""

    name = "nodes"

    def __init__(
        self, bus: Bus, nodes: Nodes, config: DockerConfig, clock: Callable[[], float]
    ) -> None:
        self.bus = bus
        self.nodes = nodes
        self.interval = config.node_check_interval
        self.failures_needed = config.node_failures
        self.limits = config.pressure
        self.clock = clock
        self.failures = dict.fromkeys(nodes.handles, 0)
        self.engine_up = dict.fromkeys(nodes.handles, True)
        self._passed_since: float | None = None  # when this machine first passed a limit
        self._announced: set[str] = set()
        self.subscription = (
            bus.subscribe("nodes", SampleBatch, capacity=64) if self.limits.any else None
        )

    @property
    def needed(self) -> bool:
        """Whether there is anything to watch: several engines, or pressure limits."""
        return self.nodes.several or self.subscription is not None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            if self.nodes.several:
                group.create_task(self._check_engines())
            if self.subscription is not None:
                group.create_task(self._watch_pressure())

    async def _check_engines(self) -> None:
        while True:
            await asyncio.gather(*(self.check(name) for name in self.nodes.handles))
            await asyncio.sleep(self.interval)

    async def check(self, node: str) -> None:
        handle = self.nodes.handles[node]
        try:
            async with asyncio.timeout(min(handle.timeout, max(self.interval, 1.0))):
                await handle.ping()
        except Exception as err:  # any failure to answer counts; the reason is logged
            self.failures[node] += 1
            if self.failures[node] == self.failures_needed:
                self.engine_up[node] = False
                why = "timed out" if isinstance(err, TimeoutError) else f"{type(err).__name__}"
                self._set(node, "engine", f"engine not answering ({why})")
            return
        self.failures[node] = 0
        self.engine_up[node] = True
        self._set(node, "engine", None)

    async def _watch_pressure(self) -> None:
        assert self.subscription is not None
        async for batch in self.subscription:
            if isinstance(batch, SampleBatch) and any(
                s.name in PRESSURE_NAMES for s in batch.samples
            ):  # whichever input measures this machine
                self.judge_pressure(batch.samples, batch.timestamp)

    def passed(self, samples: Iterable[Sample]) -> str | None:
        """Which limit this machine's samples pass, if any."""
        values = {s.name: s.value for s in samples if all(k == "node" for k, _ in s.labels)}
        for field_name, metric in PRESSURE_METRICS.items():
            limit = getattr(self.limits, field_name)
            value = values.get(metric)
            if limit is not None and value is not None and value > limit:
                return f"{field_name.replace('_', ' ')} {value:.0f} > {limit:g}"
        return None

    def judge_pressure(self, samples: Iterable[Sample], now: float) -> None:
        reason = self.passed(samples)
        if reason is None:
            self._passed_since = None
        elif self._passed_since is None:
            self._passed_since = now
        lasting = (
            reason is not None and now - (self._passed_since or now) >= self.limits.for_seconds
        )
        for name, handle in self.nodes.handles.items():
            if handle.local:
                self._set(name, "pressure", f"under pressure: {reason}" if lasting else None)

    def _set(self, node: str, cause: str, reason: str | None) -> None:
        flipped = self.nodes.set_fault(node, cause, reason)
        healthy = self.nodes.healthy(node)
        if not flipped and (node in self._announced or not healthy):
            return
        self._announced.add(node)
        why = reason or ("answers" if not flipped else f"{cause} fault cleared")
        shown = self.nodes.handles[node].display
        if healthy:
            log.info("%s healthy%s (%s)", shown, " again" if flipped else "", why)
        else:
            log.warning("%s unhealthy: %s", shown, why)
        self.bus.publish(NodeHealthChange(node, healthy, why, self.clock()))

    def telemetry(self, now: float) -> Iterable[Sample]:
        for name in self.nodes.handles:
            pairs = labels_of({"node": name}) if name else ()  # one engine: no node label
            yield NODE_HEALTHY.labelled(1.0 if self.nodes.healthy(name) else 0.0, now, pairs)
            if not self.nodes.several:
                continue  # one engine is not checked: there is nowhere to move to
            yield ENGINE_UP.labelled(1.0 if self.engine_up[name] else 0.0, now, pairs)


__all__ = ["NodeMonitor", "Nodes", "PressureLimits"]
