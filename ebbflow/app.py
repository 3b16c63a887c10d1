"""Wiring: config → plugins, bus, rule engine, scaler → one supervised TaskGroup."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ebbflow.bus import Bus
from ebbflow.catalog import Ownership, ServiceCatalog
from ebbflow.config import AppConfig, ConfigError, LeaseConfig, Role, RulesConfig, ScopeConfig
from ebbflow.context import DecisionContext
from ebbflow.controls import ControlsWatch
from ebbflow.discovery import Inventory
from ebbflow.engine_certs import EngineCertificates
from ebbflow.health import Health, ReportsDependencies, ReportsHealth
from ebbflow.lease import Lease
from ebbflow.lease_engines import EngineLeaseOwnership, EngineLeases
from ebbflow.lease_swarm import SwarmLease
from ebbflow.loop_watch import LoopWatch
from ebbflow.names import instance_name
from ebbflow.nodes import NodeMonitor, Nodes
from ebbflow.partitions import PartitionOwnership
from ebbflow.plugins import (
    Component,
    Input,
    Output,
    PluginContext,
    ReportsTelemetry,
    enabled_sections,
    load,
)
from ebbflow.process_telemetry import ProcessTelemetry
from ebbflow.reload import Reloader
from ebbflow.rules.engine import RuleEngine
from ebbflow.scaler.healing import Healer
from ebbflow.scaler.migration import Migrator
from ebbflow.scaler.reconcile import Reconciler
from ebbflow.scaler.runner import ActionRunner
from ebbflow.scaler.safety import ActionGate
from ebbflow.state import DecisionStore
from ebbflow.state_watch import StateWatch
from ebbflow.supervisor import Supervisor
from ebbflow.telemetry import TelemetryInput
from ebbflow.web.routes import StatusPages
from ebbflow.web.view import StatusView

log = logging.getLogger("ebbflow")


@dataclass
class App:
    config: AppConfig
    context: PluginContext
    store: DecisionStore
    inputs: dict[str, Input] = field(default_factory=dict)
    outputs: dict[str, Output] = field(default_factory=dict)
    components: list[Component] = field(default_factory=list)
    supervisor: Supervisor | None = None

    async def close(self) -> None:
        self.store.close()
        await self.context.nodes.close()


def build_context(config: AppConfig, clock: Callable[[], float] = time.time) -> PluginContext:
    bus, nodes = Bus(config.bus_capacity), Nodes.from_config(config.docker)
    sharing = config.lease.enabled and config.lease.backend == "kafka" and not config.dry_run
    return PluginContext(
        app=config,
        bus=bus,
        nodes=nodes,
        clock=clock,
        health=Health(config.role),
        inventory=Inventory(nodes, bus, clock, config.docker.node_check_interval),
        partitions=PartitionOwnership("", "") if sharing and config.role != "agent" else None,
    )


def build_lease(
    ctx: PluginContext, scope: ScopeConfig, config: LeaseConfig, clock: Callable[[], float]
) -> tuple[Lease | SwarmLease | EngineLeases | None, Ownership]:
    """Who may act on what: a Kafka group's partitions (no lease part), the Swarm's raft
    lease, one lease per engine for plain engines on several hosts, or the one engine's."""
    if ctx.partitions is not None:
        return None, ctx.partitions
    if config.backend == "swarm":
        swarm = SwarmLease(ctx.nodes.default, scope, config, ctx.bus, clock)
        return swarm, swarm.ownership
    if config.enabled and ctx.nodes.several:
        engines = EngineLeases(ctx.nodes, scope, config, clock, ctx.bus)
        ctx.nodes.held = engines.holds  # the actuators ask it before every change on a node
        return engines, engines.ownership
    lease = Lease(ctx.nodes.default, scope, config, clock, ctx.bus)
    return lease, lease.ownership


def with_status_page(ctx: PluginContext) -> tuple[PluginContext, StatusView]:
    """The status page's model, and its routes for the output that serves HTTP."""
    config = ctx.app
    view = StatusView(ctx.bus, ctx.nodes, ctx.clock, config.role, instance_name(), ctx.health.ready)
    return replace(ctx, web=StatusPages(view)), view


def receivers(inputs: dict[str, Any]) -> frozenset[str]:
    """The inputs that receive: their batches are other nodes' samples, not this one's."""
    return frozenset(n for n in inputs if load("inputs", plugin_name("inputs", n)).receives)


def acting_as(
    lease: Lease | SwarmLease | EngineLeases | None, partitions: PartitionOwnership | None
) -> str:
    """This instance's name as its lease (or its consumer group's member) gives it."""
    if lease is not None:
        return lease.owner
    return partitions.instance if partitions is not None else ""


def build_plugins(
    ctx: PluginContext, kind: str, sections: dict[str, Any], role: Role = "all"
) -> dict[str, Any]:
    """The enabled plugins of a kind; of inputs, those the role runs (an agent collects on
    its node, a decider receives what agents push)."""
    built = {}
    for name, options in enabled_sections(sections).items():
        plugin = load(kind, plugin_name(kind, name))
        if kind == "inputs" and role != "all" and plugin.receives != (role == "decider"):
            log.info("role %s: input %s is not started (%s)", role, name,
                     "a receiver" if plugin.receives else "it collects on a node")  # fmt: skip
            continue
        part = plugin.build(replace(ctx, instance=name), options, f"{kind}.{name}")
        part.name = name
        built[name] = part
    return built


def plugin_name(kind: str, section: str) -> str:
    """The plugin a config section names: `remote_write`, or `remote_write/standby` for a
    second instance of an output (one remote write per decider, say)."""
    name, slash, alias = section.partition("/")
    if slash and (kind != "outputs" or not re.fullmatch(r"[a-z0-9_-]{1,32}", alias)):
        raise ConfigError(f"{kind}.{section}: only outputs take a second instance, as "
                          "`name/alias` with an alias of [a-z0-9_-]{1,32}")  # fmt: skip
    return name


def build_app(
    config: AppConfig,
    clock: Callable[[], float] = time.time,
    read_config: Callable[[], AppConfig] | None = None,
) -> App:
    """Every part, wired. `read_config` reads the config again on SIGHUP."""
    ctx, view = with_status_page(build_context(config, clock))
    # An agent decides nothing, so it keeps no state file.
    store = DecisionStore(config.state if config.role != "agent" else ":memory:")
    app = App(config, ctx, store)
    app.inputs = build_plugins(ctx, "inputs", config.inputs, config.role)
    view.receivers = receivers(app.inputs)
    app.outputs = build_plugins(ctx, "outputs", config.outputs)
    if config.role == "decider" and not app.inputs:
        log.warning("role decider: no input receives samples (enable inputs.remote_write); "
                    "nothing feeds the rules")  # fmt: skip
    if config.role == "agent" and set(app.outputs) <= {"prometheus"}:
        log.warning("role agent: no output pushes samples (enable outputs.remote_write or "
                    "kafka); deciders will not see this node")  # fmt: skip
    if config.role == "agent":
        return build_agent(app, view, clock, read_config)
    actuators = [
        load("actuators", name).build(ctx, {}, f"actuators.{name}") for name in config.actuators
    ]
    gate = ActionGate(config.max_actions_per_minute)
    # A dry run changes nothing, so it holds no lease and never keeps the real one waiting.
    lease_config = config.lease if not config.dry_run else LeaseConfig(enabled=False)
    if ctx.partitions is not None and "kafka" not in app.inputs:
        raise ConfigError("lease.backend: kafka needs inputs.kafka enabled (its consumer "
                          "group decides who owns which service)")  # fmt: skip
    lease, ownership = build_lease(ctx, config.scope, lease_config, clock)
    view.instance = acting_as(lease, ctx.partitions) or view.instance
    catalog = ServiceCatalog(ctx.bus, config.rules, config.scope, ownership, clock)
    view.attach(catalog, store)
    ctx.attention.attach(catalog.reads)
    if isinstance(ownership, EngineLeaseOwnership):
        ownership.nodes_of = catalog.nodes_of
    controls = ControlsWatch(ctx.bus, store, clock, report=lambda: ctx.health.report().as_dict())
    state = StateWatch(store)
    catalog.blockers.append(state.problem)  # nothing is done that cannot be recorded
    deciding = DecisionContext(ctx.bus, catalog, store, clock, config.dry_run, ctx.nodes)
    engine = RuleEngine(deciding, config.rules)
    runner = ActionRunner(deciding, actuators, gate)
    if ctx.partitions is not None:
        ctx.partitions.drains.append(runner.quiet)
    healer = Healer(deciding, runner, config.healing)
    migrator = Migrator(deciding, runner, healer, actuators)
    reconciler = Reconciler(
        deciding,
        actuators,
        config.reconcile,
        healing_under_way=lambda key: healer.under_way(key) or migrator.under_way(key),
        acted_on=runner.acted_on,
        controls=controls,
    )
    monitor = NodeMonitor(ctx.bus, ctx.nodes, config.docker, clock)
    parts = [
        *app.outputs.values(),
        ctx.inventory,
        view,
        *([lease] if lease is not None else []),
        state,
        controls,
        engine,
        runner,
        healer,
        migrator,
    ]
    if config.reconcile.enabled:
        parts.append(reconciler)
    parts += app.inputs.values()
    supervise(app, parts, [ctx.bus, ctx.health, catalog], monitor)
    assert app.supervisor is not None
    if read_config is not None:
        app.supervisor.on_hangup = Reloader(
            config,
            read_config,
            {
                "log_level": lambda level: logging.getLogger().setLevel(str(level).upper()),
                "rules": lambda rules: reconfigure_rules(catalog, engine, rules),
                "healing": lambda healing: setattr(healer, "config", healing),
                "reconcile": lambda reconcile: setattr(reconciler, "config", reconcile),
                "max_actions_per_minute": lambda n: setattr(gate, "max_per_minute", n),
            },
        )
    return app


def build_agent(
    app: App,
    view: StatusView,
    clock: Callable[[], float],
    read_config: Callable[[], AppConfig] | None,
) -> App:
    """An agent's parts: its inputs and outputs, no decision side."""
    ctx, config = app.context, app.config
    # The page's catalog only: an agent decides nothing, owns nothing, announces nothing.
    catalog = ServiceCatalog(ctx.bus, config.rules, config.scope, announce=False)
    view.attach(catalog, None)
    ctx.attention.attach(catalog.reads)  # what its policies read is read every cycle
    parts: list[Any] = [*app.outputs.values(), ctx.inventory, view, *app.inputs.values()]
    monitor = NodeMonitor(ctx.bus, ctx.nodes, config.docker, clock)
    supervise(app, parts, [ctx.bus, ctx.health], monitor)
    if read_config is not None and app.supervisor is not None:
        app.supervisor.on_hangup = Reloader(
            config,
            read_config,
            {"log_level": lambda level: logging.getLogger().setLevel(str(level).upper())},
        )
    return app


def supervise(
    app: App, parts: list[Any], reporters: list[ReportsTelemetry], monitor: NodeMonitor
) -> App:
    """Every part under one supervisor, its telemetry and health reported. A part that
    has nothing to do is not started at all, since one that returns is restarted like one
    that crashed (the node monitor, when no node needs watching)."""
    ctx, config = app.context, app.config
    parts.append(LoopWatch())  # stalls and wall clock jumps, logged and counted
    if ctx.nodes.tls_config is not None and ctx.nodes.tls is not None:
        parts.append(EngineCertificates(ctx.nodes.tls_config, ctx.nodes.tls))
    if monitor.needed:
        parts.append(monitor)
    # The node monitor reports every node's health even when it has nothing to watch.
    watched = parts if monitor in parts else [*parts, monitor]
    reporters += [p for p in watched if isinstance(p, ReportsTelemetry)]
    reporters.append(ProcessTelemetry())
    telemetry = TelemetryInput(ctx.bus, reporters, config.interval, ctx.clock)
    app.components = [*parts, telemetry]
    app.supervisor = supervisor = Supervisor(app.components, config.supervision)
    telemetry.reporters.append(supervisor)
    ctx.health.add_check(supervisor.problems)
    ctx.health.components = supervisor.snapshot
    for part in app.components:
        if isinstance(part, ReportsHealth):
            ctx.health.add_part(part)
        if isinstance(part, ReportsDependencies):
            ctx.health.add_dependencies(part)
    return app


def reconfigure_rules(catalog: ServiceCatalog, engine: RuleEngine, rules: RulesConfig) -> None:
    engine.reconfigure(rules)
    catalog.reconfigure(rules)


async def run_app(app: App) -> None:
    log.info(
        "ebbflow starting: inputs %s, outputs %s, state %s, acting on %s%s",
        sorted(app.inputs),
        sorted(app.outputs),
        app.config.state,
        app.config.scope.describe(),
        " (dry run)" if app.config.dry_run else "",
    )
    try:
        assert app.supervisor is not None
        await app.supervisor.run()
    finally:
        await app.close()
        log.info("ebbflow stopped")
