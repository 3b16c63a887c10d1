"""The node input: node_exporter's collectors, each read in isolation every cycle in a worker
thread; one that fails costs only its own series, and says so in
node_scrape_collector_success{collector}, as node_exporter does."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

import psutil

from ebbflow.bus import Bus
from ebbflow.model import MetricKind, Sample, labels_of
from ebbflow.names import NODE_CPU_PERCENT, NODE_MEMORY_PERCENT

from ..base import PollingInput
from .collectors import ALWAYS, COLLECTORS
from .config import NodeConfig
from .source import Paths

log = logging.getLogger("ebbflow.collector.node")


class NodeInput(PollingInput):
    name = "node"

    def __init__(
        self,
        bus: Bus,
        config: NodeConfig,
        interval: float,
        clock: Callable[[], float],
        labelled: bool | None = None,
    ) -> None:
        """`labelled`: a `node` label on every series (default: when a name is configured)."""
        super().__init__(bus, interval, config.timeout, clock)
        self.config = config
        self.node = config.name or socket.gethostname()
        labelled = config.name is not None if labelled is None else labelled
        self._node_label = {"node": self.node} if labelled else {}
        self.node_labels = labels_of(self._node_label)
        self._last_cpu: tuple[float, float] | None = None  # (busy, total) seconds
        self.paths = Paths(
            config.proc_root,
            config.sys_root,
            config.etc_root,
            config.run_root,
            {
                "ignored_devices": config.ignored_devices,
                "mount_points_exclude": config.mount_points_exclude,
                "fs_types_exclude": config.fs_types_exclude,
            },
        )
        self.collectors = tuple(dict.fromkeys((*ALWAYS, *config.collectors)))
        self.failing: set[str] = set()

    def _sample(
        self,
        out: list[Sample],
        name: str,
        value: float,
        now: float,
        kind: MetricKind = "gauge",
        help_text: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        pairs = labels_of({**self._node_label, **labels}) if labels else self.node_labels
        out.append(Sample(name, float(value), pairs, now, kind, help_text))

    def read(self) -> list[Sample]:
        now = self.clock()
        out: list[Sample] = []
        for name in self.collectors:
            self._collect(name, out, now)
        memory = psutil.virtual_memory()
        self._sample(
            out,
            NODE_MEMORY_PERCENT,
            100.0 * (memory.total - memory.available) / memory.total,
            now,
            help_text="Memory in use (total less available), percent.",
        )
        self._cpu_percent(out, now)
        return out

    def _collect(self, name: str, out: list[Sample], now: float) -> None:
        """One collector, isolated: its failure is its own, logged when it starts and ends."""
        started = time.perf_counter()
        try:
            rows = COLLECTORS[name](self.paths)
        except Exception as err:  # this collector's, whatever it is
            success = 0.0
            if name not in self.failing:
                log.warning("node: collector %s failed: %s: %s", name, type(err).__name__, err)
                self.failing.add(name)
        else:
            success = 1.0
            if name in self.failing:
                log.info("node: collector %s works again", name)
                self.failing.discard(name)
            for row in rows:
                self._sample(out, row.name, row.value, now, row.kind, row.help, row.labels)
        labels = {"collector": name}
        self._sample(out, "node_scrape_collector_duration_seconds",
                     time.perf_counter() - started, now, "gauge",
                     "node_exporter: Duration of a collector scrape.", labels)  # fmt: skip
        self._sample(out, "node_scrape_collector_success", success, now, "gauge",
                     "node_exporter: Whether a collector succeeded.", labels)  # fmt: skip

    def _cpu_percent(self, out: list[Sample], now: float) -> None:
        busy_total = all_total = 0.0
        for s in out:
            if s.name == "node_cpu_seconds_total":
                all_total += s.value
                if s.label("mode") not in ("idle", "iowait"):
                    busy_total += s.value
        if self._last_cpu is not None and all_total > self._last_cpu[1]:
            busy = (busy_total - self._last_cpu[0]) / (all_total - self._last_cpu[1])
            self._sample(
                out,
                NODE_CPU_PERCENT,
                100.0 * busy,
                now,
                help_text="CPU busy over the last cycle, percent of all cores.",
            )
        self._last_cpu = (busy_total, all_total)

    async def fetch(self) -> list[Sample]:
        return await asyncio.to_thread(self.read)

    async def prepare(self) -> None:
        await asyncio.to_thread(self.read)  # the CPU baseline
