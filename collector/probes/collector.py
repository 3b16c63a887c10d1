"""The probes input: one task per probed container, started and stopped by Docker events.

Each result is published at once (so a rule can act on it) as a full batch of that
container's own source, `probes/<id>`: a changed failure reason replaces the old
`ebbflow_probe_failure_info` series, and an empty batch retires them all when the container
stops. Health follows the failure/success
thresholds and is logged on change only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from ebbflow.bus import Bus
from ebbflow.metrics import Desc
from ebbflow.model import ContainerInfo, HealthChange, Sample, SampleBatch
from ebbflow.names import PROBE_URL_LABELS
from ebbflow.nodes import Nodes
from ebbflow.services import service_key

from ..identity import container_labels
from ..label_errors import LabelErrors
from ..ticks import Ticks
from ..watch import ContainerWatch
from .boundary import allowed
from .checks import ProbeResult, cmd_probe, http_probe, tcp_probe, timing_trace
from .metrics import probe_samples
from .spec import MIN_INTERVAL, ProbeSpec, parse_probe

log = logging.getLogger("ebbflow.collector.probes")

SOURCE_PREFIX = "probes/"


ACTIVE = Desc("ebbflow_probes_active", "Containers being probed.")
RESULTS = Desc("ebbflow_probe_results_total", "Probe results published.", "counter")
ERRORS = Desc(
    "ebbflow_probe_errors_total",
    "Probes that raised instead of giving a result (each a failed result).",
    "counter",
)


@dataclass
class ProbeState:
    """Consecutive outcomes and the health they add up to."""

    spec: ProbeSpec
    healthy: bool = True
    failures: int = 0
    successes: int = 0
    last: ProbeResult | None = field(default=None)

    def record(self, result: ProbeResult) -> bool:
        """Returns True when health changed."""
        self.last = result
        if result.success:
            self.successes, self.failures = self.successes + 1, 0
            if not self.healthy and self.successes >= self.spec.success_threshold:
                self.healthy = True
                return True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.healthy and self.failures >= self.spec.failure_threshold:
                self.healthy = False
                return True
        return False


def result_samples(
    info: ContainerInfo,
    spec: ProbeSpec,
    state: ProbeState,
    result: ProbeResult,
    now: float,
    extra_labels: tuple[str, ...] = (),
) -> tuple[Sample, ...]:
    base = {**container_labels(info, extra_labels), "probe": spec.kind}
    return probe_samples(base, result, state.healthy, now)


def shared_key(info: ContainerInfo, spec: ProbeSpec) -> tuple[str, str] | None:
    """On host networking, where a URL or TCP probe goes is the host's, not the replica's:
    replicas of one service with one target share it."""
    if info.network_mode != "host" or spec.cmd is not None:
        return None
    target = spec.target(info.address)
    return (str(service_key(info.labels, info.name)), target) if target else None


class ProbeInput:
    name = "probes"

    def __init__(
        self,
        bus: Bus,
        nodes: Nodes,
        clock: Callable[[], float],
        min_interval: float = MIN_INTERVAL,
        extra_labels: tuple[str, ...] = (),
        allowed_targets: tuple[str, ...] = (),
    ) -> None:
        self.allowed_targets = allowed_targets  # the operator's trust, beyond the container
        self.extra_labels = extra_labels
        self.min_interval = min_interval
        self.bus = bus
        self.nodes = nodes
        self.clock = clock
        self.watch = ContainerWatch(bus, "probes", self._changed)
        self.states: dict[str, ProbeState] = {}
        self.config_errors = LabelErrors("probe", "ebbflow_probe_config_errors", log)
        self.results = 0
        self.probe_errors = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Host-network replicas of one service that probe one address: (service, target) →
        # their ids, the first the one that probes for all.
        self.shared: dict[tuple[str, str], list[str]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No connection reuse and no DNS cache: a probe must open its connection like a
            # new client would.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, use_dns_cache=False),
                trace_configs=[timing_trace()],
                headers={"User-Agent": "ebbflow-probe"},
            )
        return self._session

    def _changed(self, info: ContainerInfo, running: bool) -> None:
        task = self._tasks.pop(info.id, None)
        if task is not None:
            task.cancel()
        if not running:
            self.states.pop(info.id, None)
            self.config_errors.record(info.name, ())
            self.bus.publish(SampleBatch(SOURCE_PREFIX + info.id, self.clock(), ()))
            self._leave_shared(info.id)
            return
        spec = self._spec(info)
        if spec is None or self._group is None:
            return
        key = shared_key(info, spec)
        if key is not None:
            members = self.shared.setdefault(key, [])
            if info.id not in members:
                members.append(info.id)
            if members[0] != info.id:
                if len(members) == 2:
                    log.warning(
                        "service %s: replicas on host networking probe the same address %s: "
                        "probed once, as the service's probe; its failures restart no replica",
                        *key,
                    )
                return  # the first replica probes for all of them
        self._tasks[info.id] = self._group.create_task(self._probe_loop(info, spec))

    def _leave_shared(self, container_id: str) -> None:
        """A replica of a shared probe stopped; when it probed, the next one takes over."""
        for key, members in list(self.shared.items()):
            if container_id not in members:
                continue
            was_prober = members[0] == container_id
            members.remove(container_id)
            if not members:
                del self.shared[key]
            elif was_prober:
                successor = self.watch.running.get(members[0])
                spec = self._spec(successor) if successor is not None else None
                if successor is not None and spec is not None and self._group is not None:
                    self._tasks[successor.id] = self._group.create_task(
                        self._probe_loop(successor, spec)
                    )

    def probes_for_service(self, container_id: str) -> bool:
        """Whether the container's probe answers for several replicas (a service's probe)."""
        return any(len(m) > 1 and m[0] == container_id for m in self.shared.values())

    def _spec(self, info: ContainerInfo) -> ProbeSpec | None:
        spec, errors = parse_probe(info.labels, self.min_interval)
        if spec is not None and spec.url is not None:
            outside = allowed(spec.url, info, self.allowed_targets)
            if outside is not None:
                label = next(k for k in PROBE_URL_LABELS if k in info.labels)
                self.config_errors.record(info.name, (f"{label}: {outside}",))
                return None
        if spec is not None and spec.url is not None and spec.target(info.address) is None:
            # `--network none`: nothing can reach it, and probing anyway would only
            # fail and get it restarted again and again.
            label = next(k for k in PROBE_URL_LABELS if k in info.labels)
            spec, errors = (
                None,
                (
                    f"{label}: the container has no network address (network "
                    f"{info.network_mode or 'none'}): a URL probe cannot reach it; probe it with "
                    "aliyun.probe.cmd instead",
                ),
            )
        self.config_errors.record(info.name, errors)
        return spec

    async def probe(self, info: ContainerInfo, spec: ProbeSpec) -> ProbeResult:
        if spec.kind == "cmd":
            return await cmd_probe(self.nodes.handle(info.node).client, spec, info.id)
        target = spec.target(info.address)
        if target is None:
            return ProbeResult(False, 0.0, "error", detail="the container has no network address")
        outside = allowed(target, info, self.allowed_targets) if spec.url else None
        if outside is not None:  # checked again where the request is made: never sent
            return ProbeResult(False, 0.0, "error", detail=outside)
        if spec.kind == "tcp":
            return await tcp_probe(spec, target)
        return await http_probe(self.session, spec, target)

    def publish(self, info: ContainerInfo, state: ProbeState, result: ProbeResult) -> None:
        self.results += 1
        changed = state.record(result)
        if changed and self.probes_for_service(info.id):
            log.warning(
                "service %s: its shared probe is %s: %s (%s); no replica is restarted for it",
                service_key(info.labels, info.name),
                "healthy" if state.healthy else "unhealthy",
                result.reason,
                result.detail,
            )
        elif changed:
            self.bus.publish(
                HealthChange(
                    info,
                    service_key(info.labels, info.name),
                    state.healthy,
                    result.reason,
                    result.detail,
                    self.clock(),
                )
            )
            if state.healthy:
                log.info("container %s: probe healthy again", info.name)
            else:
                log.warning(
                    "container %s: probe unhealthy after %d failures: %s (%s)",
                    info.name,
                    state.failures,
                    result.reason,
                    result.detail,
                )
        now = self.clock()
        samples = result_samples(info, state.spec, state, result, now, self.extra_labels)
        self.bus.publish(SampleBatch(SOURCE_PREFIX + info.id, now, samples))

    async def _probe_loop(self, info: ContainerInfo, spec: ProbeSpec) -> None:
        state = self.states[info.id] = ProbeState(spec)
        started = info.started_at or self.clock()
        ticks = Ticks(spec.interval, started + spec.initial_delay - self.clock())
        loop = asyncio.get_running_loop()
        while True:
            await ticks.wait()
            began = loop.time()
            try:
                result = await self.probe(info, spec)
            except Exception as err:  # this target's failure, never the input's
                self.probe_errors += 1
                log.exception("container %s: its probe raised", info.name)
                result = ProbeResult(False, loop.time() - began, "error", detail=repr(err))
            self.publish(info, state, result)

    async def run(self) -> None:
        self._tasks.clear()  # after a restart: those tasks ended with the last group
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for info in list(self.watch.running.values()):
                    self._changed(info, True)
                await self.watch.follow()
        finally:
            self._group = None
            if self._session is not None:
                await self._session.close()

    async def collect_once(self) -> list[Sample]:
        """Probe every labelled running container once, initial delays honoured."""
        containers = await self.nodes.running_containers()
        now = time.time()
        jobs = []
        for info in containers:
            spec = self._spec(info)
            if spec is not None and now >= (info.started_at or now) + spec.initial_delay:
                jobs.append((info, spec))
        try:
            results = await asyncio.gather(*(self.probe(i, s) for i, s in jobs))
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None
        return [
            sample
            for (info, spec), result in zip(jobs, results, strict=True)
            for sample in result_samples(
                info, spec, ProbeState(spec), result, self.clock(), self.extra_labels
            )
        ]

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield ACTIVE.sample(len(self._tasks), now)
        yield RESULTS.sample(self.results, now)
        yield ERRORS.sample(self.probe_errors, now)
        yield from self.config_errors.telemetry(now)
