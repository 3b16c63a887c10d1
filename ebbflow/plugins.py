"""Plugin contracts and their discovery through entry points.

Inputs, outputs and actuators register under the entry-point groups `ebbflow.inputs`,
`ebbflow.outputs` and `ebbflow.actuators`; the app loads what the config names, so the
core never imports any one plugin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from ebbflow.attention import Attention
from ebbflow.bus import Bus
from ebbflow.config import AppConfig, ConfigError, FrozenModel, validate
from ebbflow.discovery import Inventory
from ebbflow.docker_api import DockerHandle
from ebbflow.health import Health
from ebbflow.model import (
    ActionResult,
    ContainerInfo,
    Decision,
    HealingAction,
    NodeHealthChange,
    Sample,
    ServiceKey,
)
from ebbflow.nodes import Nodes
from ebbflow.partitions import PartitionOwnership

if TYPE_CHECKING:
    from ebbflow.web.routes import StatusPages


@dataclass(frozen=True)
class PluginContext:
    """What every plugin may use; nothing else is shared."""

    app: AppConfig
    bus: Bus
    nodes: Nodes
    clock: Callable[[], float]
    health: Health
    inventory: Inventory  # the running containers of every node, kept by the core
    # The decider's ownership when a consumer group shares the services (`lease.backend:
    # kafka`): the Kafka input keeps it, the catalog asks it.
    partitions: PartitionOwnership | None = None
    # The config section a plugin is built from: its name, or `name/alias` for a second
    # instance of an output (`remote_write/standby`); it names the part, its metrics'
    # `output` label and its spool.
    instance: str = ""
    # The status page's routes (ebbflow/web/), for the output that serves HTTP to add.
    web: StatusPages | None = None
    # Which containers a policy reads (the catalog answers, once built): read every cycle.
    attention: Attention = field(default_factory=Attention)

    @property
    def docker(self) -> DockerHandle:
        """The engine, when there is one; the first node's when there are several."""
        return self.nodes.default


class Component(Protocol):
    """Anything the supervisor runs: `run` returns when the component is done."""

    name: str

    async def run(self) -> None: ...


@runtime_checkable
class ReportsTelemetry(Protocol):
    """Optional hook: a component's own health, exported as ordinary samples."""

    def telemetry(self, now: float) -> Iterable[Sample]: ...


class Input(Component, Protocol):
    async def collect_once(self) -> list[Sample]:
        """One cycle on demand, for `ebbflow collect --once`."""
        ...


class Output(Component, Protocol):
    pass


class Actuator(Protocol):
    """Changes an engine. `apply` converges a service on a decision's replica count, so
    repeating it (after a restart cut it off) does no harm; `heal` restarts or replaces one
    container and returns what it did, raising when it could not."""

    name: str

    def supports(self, service: ServiceKey) -> bool:
        """Whether this actuator scales the service."""
        ...

    def can_heal(self, service: ServiceKey) -> bool: ...

    async def apply(
        self, decision: Decision, unhealthy: frozenset[str] = frozenset()
    ) -> ActionResult:
        """`unhealthy` names containers to remove first on scale-in."""
        ...

    async def heal(
        self, service: ServiceKey, container: ContainerInfo, action: HealingAction
    ) -> str: ...

    def stopped_by_us(self, container_id: str) -> bool:
        """Whether this actuator stopped the container (so its exit is no failure)."""
        ...

    def acted_on(self, container_id: str) -> bool:
        """Whether this actuator stopped, restarted or removed the container lately: a stop
        or removal it did not make is the operator's (intent, not failure)."""
        ...


@runtime_checkable
class WatchesNodes(Protocol):
    """Optional actuator hook: its own answer to a node's health. Returns what it did (or,
    in a dry run, would do), None when the node is none of its business."""

    async def node_changed(self, change: NodeHealthChange, dry_run: bool) -> str | None: ...


C = TypeVar("C", bound=FrozenModel)
T = TypeVar("T")


@dataclass(frozen=True)
class LabelReport:
    """What an input reads from a service's labels, for `ebbflow policies`: `fields` for
    its JSON row, `summary` for its table row, and warnings."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    warnings: tuple[str, ...] = ()


# (the container that defines a service, every running replica of it) → what the input
# reads from their labels. An input registers one so the core never imports it.
Describe = Callable[[ContainerInfo, Sequence[ContainerInfo]], LabelReport]


@dataclass(frozen=True)
class Plugin(Generic[C, T]):
    """A plugin's registration: its config model, a factory, and what the core may ask of
    it without building it (`describe`)."""

    name: str
    config_model: type[C]
    create: Callable[[PluginContext, C], T]
    describe: Describe | None = None
    # Takes samples pushed from elsewhere (agents, a Prometheus) instead of collecting on
    # this node: the inputs a `--role decider` runs (an agent runs the others).
    receives: bool = False

    def build(self, ctx: PluginContext, options: Mapping[str, Any], where: str) -> T:
        config: C = validate(self.config_model, options, where)
        return self.create(ctx, config)


GROUPS = {
    "inputs": "ebbflow.inputs",
    "outputs": "ebbflow.outputs",
    "actuators": "ebbflow.actuators",
    "benchmarks": "ebbflow.benchmarks",
    "strategies": "ebbflow.strategies",
}


def available(kind: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def load(kind: str, name: str) -> Plugin[Any, Any]:
    found = available(kind)
    if name not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise ConfigError(f"{kind}.{name}: no such plugin (known: {known})")
    plugin = found[name].load()
    if not isinstance(plugin, Plugin):
        raise ConfigError(f"{kind}.{name}: entry point does not name a Plugin")
    return plugin


Benchmark = Callable[[PluginContext, int], Awaitable[dict[str, Any]]]


def load_benchmark(name: str) -> Benchmark:
    found = available("benchmarks")
    if name not in found:
        raise ConfigError(f"bench {name}: no such benchmark (known: {', '.join(sorted(found))})")
    bench: Benchmark = found[name].load()
    return bench


def enabled_sections(
    sections: Mapping[str, Mapping[str, Any] | bool],
) -> dict[str, Mapping[str, Any]]:
    """`name: {}` or `name: true` enables a plugin with defaults; `name: false` disables it."""
    out: dict[str, Mapping[str, Any]] = {}
    for name, options in sections.items():
        if options is False:
            continue
        out[name] = {} if options is True else options
    return out
