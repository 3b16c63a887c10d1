"""The app-scrape input: every labelled container's endpoint, concurrently, each cycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import aiohttp

from ebbflow.bus import Bus
from ebbflow.model import ContainerInfo, Sample, labels_of
from ebbflow.nodes import Nodes

from ..base import PollingInput
from ..identity import container_labels
from ..label_errors import LabelErrors
from ..watch import ContainerWatch
from .formats import ACCEPT, DOWN, PARSERS, RATES, Row
from .spec import ScrapeSpec, parse_scrape

log = logging.getLogger("ebbflow.collector.scrape")


def with_identity(own: dict[str, str], identity: dict[str, str]) -> dict[str, str]:
    """The container's identity over the app's labels, as Prometheus does with
    honor_labels false: an app label it hides moves to `exported_<name>`, then
    `exported_exported_<name>` while that is taken (the app's own `exported_name` too)."""
    merged = {**own, **identity}
    for key in sorted((k for k in own if k in identity), key=len):
        moved = "exported_" + key
        while moved in merged:
            moved = "exported_" + moved
        merged[moved] = own[key]
    return merged


class ScrapeInput(PollingInput):
    name = "scrape"

    def __init__(
        self,
        bus: Bus,
        nodes: Nodes,
        interval: float,
        timeout: float,
        clock: Callable[[], float],
        extra_labels: tuple[str, ...] = (),
    ) -> None:
        super().__init__(bus, interval, timeout, clock)
        self.nodes = nodes
        self.extra_labels = extra_labels
        self.watch = ContainerWatch(bus, "scrape")
        self.target_timeout = timeout * 0.8  # one slow target never fails the whole cycle
        self.target_up: dict[str, bool] = {}
        # (container id, counter) → (when, value) at the last scrape, for RATES
        self._previous: dict[tuple[str, str], tuple[float, float]] = {}
        self.config_errors = LabelErrors("scrape", "ebbflow_scrape_config_errors", log)

    def targets(
        self, containers: Iterable[ContainerInfo]
    ) -> list[tuple[ContainerInfo, ScrapeSpec]]:
        found = []
        seen = []
        for info in containers:
            spec, errors = parse_scrape(info.labels)
            self.config_errors.record(info.name, errors)
            seen.append(info.name)
            if spec is not None:
                found.append((info, spec))
        self.config_errors.keep_only(seen)
        return found

    async def scrape(
        self, session: aiohttp.ClientSession, info: ContainerInfo, spec: ScrapeSpec, now: float
    ) -> list[Sample]:
        identity = container_labels(info, self.extra_labels)
        up_labels = labels_of({**identity, "format": spec.format})
        try:
            if not info.address:
                raise ValueError("the container has no network address")
            async with (
                asyncio.timeout(self.target_timeout),
                session.get(spec.url(info.address), headers={"Accept": ACCEPT}) as resp,
            ):
                resp.raise_for_status()
                text = await resp.text()
            rows = PARSERS[spec.format](text, resp.headers.get("Content-Type", ""))
        except Exception as err:  # this target's failure only: the others still count
            if self.target_up.get(info.id, True):
                log.warning(
                    "container %s: scrape of %s failed: %r", info.name, spec.url(info.address), err
                )
            self.target_up[info.id] = False
            down = [
                Sample(
                    "ebbflow_scrape_up",
                    0.0,
                    up_labels,
                    now,
                    "gauge",
                    "1 when the app endpoint answered and parsed.",
                )
            ]
            if spec.format in DOWN:
                row = DOWN[spec.format]
                down.append(
                    Sample(row.name, row.value, labels_of(identity), now, row.kind, row.help)
                )
            return down
        if not self.target_up.get(info.id, True):
            log.info("container %s: scrape recovered", info.name)
        self.target_up[info.id] = True
        samples = [
            Sample(
                "ebbflow_scrape_up",
                1.0,
                up_labels,
                now,
                "gauge",
                "1 when the app endpoint answered and parsed.",
            )
        ]
        for row in [*rows, *self.rates(info.id, spec.format, rows, now)]:
            labels = labels_of(with_identity(row.labels, identity))
            samples.append(Sample(row.name, row.value, labels, now, row.kind, row.help, row.family))
        return samples

    def rates(self, target: str, page_format: str, rows: list[Row], now: float) -> list[Row]:
        """Per-second rates from the change of a counter since this target's last scrape."""
        counters = {row.name: row.value for row in rows if not row.labels}
        out = []
        for name, (fmt, counter, scale, help_text) in RATES.items():
            if fmt != page_format or counter not in counters:
                continue
            value = counters[counter]
            previous = self._previous.get((target, counter))
            self._previous[(target, counter)] = (now, value)
            if previous is not None and now > previous[0] and value >= previous[1]:
                rate = (value - previous[1]) * scale / (now - previous[0])
                out.append(Row(name, {}, rate, "gauge", "", help_text))
        return out

    async def scrape_all(self, containers: Iterable[ContainerInfo]) -> list[Sample]:
        now = self.clock()
        targets = self.targets(containers)
        if not targets:
            return []
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(*(self.scrape(session, i, s, now) for i, s in targets))
        live = {info.id for info, _ in targets}
        self.target_up = {k: v for k, v in self.target_up.items() if k in live}
        self._previous = {k: v for k, v in self._previous.items() if k[0] in live}
        return [sample for samples in results for sample in samples]

    async def fetch(self) -> list[Sample]:
        self.watch.drain()
        return await self.scrape_all(list(self.watch.running.values()))

    async def collect_once(self) -> list[Sample]:
        return await self.scrape_all(await self.nodes.running_containers())

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield from super().telemetry(now)
        yield from self.config_errors.telemetry(now)
