"""The app-scrape input: every labelled container's endpoint, each on its own loop.

A target is scraped every interval by a task of its own, so a slow or dripping target
delays only itself, and its samples go out as a batch of their own source (`scrape/<id>`),
replaced by its next scrape and retired when the container goes. Everything a target
sends is bounded, with Prometheus' own scrape limits (`ScrapeLimits`): the body is read no
further than `body_size_limit`; a page with more than `sample_limit` samples, or a sample
with more labels, longer names or longer values than allowed, fails that scrape (as
Prometheus fails it), is counted by reason and shows as `ebbflow_scrape_up 0`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Callable, Iterable

import aiohttp

from ebbflow.bus import Bus
from ebbflow.docker_events import BodyTooLargeError, read_bounded
from ebbflow.metrics import Desc
from ebbflow.model import ContainerInfo, Sample, SampleBatch, labels_of
from ebbflow.nodes import Nodes

from ..identity import container_labels
from ..label_errors import LabelErrors
from ..ticks import Ticks
from ..watch import ContainerWatch
from .config import ScrapeLimits
from .formats import ACCEPT, DOWN, PARSERS, RATES, Row
from .spec import ScrapeSpec, parse_scrape

log = logging.getLogger("ebbflow.collector.scrape")

SOURCE_PREFIX = "scrape/"

UP = Desc("ebbflow_scrape_up", "1 when the app endpoint answered and parsed.")
INPUT_UP = Desc(
    "ebbflow_input_up", "1 while the input runs and its last cycle succeeded.", "gauge", ("input",)
)
TARGETS = Desc("ebbflow_scrape_targets", "Containers whose app endpoint is scraped.")
EXCEEDED = Desc(
    "ebbflow_scrape_limit_exceeded_total",
    "Scrapes failed for passing a scrape limit (inputs.scrape.limits), by limit.",
    "counter",
    ("limit",),
)
LIMITS = ("body_size", "sample", "label", "label_name_length", "label_value_length")


class LimitExceededError(Exception):
    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


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


def check_rows(rows: list[Row], limits: ScrapeLimits) -> None:
    """Prometheus' label limits, on every sample of the page."""
    for row in rows:
        if len(row.labels) > limits.label_limit:
            raise LimitExceededError(
                "label", f"{row.name}: {len(row.labels)} labels, over {limits.label_limit}"
            )
        for name, value in row.labels.items():
            if len(name) > limits.label_name_length_limit:
                raise LimitExceededError(
                    "label_name_length",
                    f"{row.name}: a label name of {len(name)} characters, "
                    f"over {limits.label_name_length_limit}",
                )
            if len(value) > limits.label_value_length_limit:
                raise LimitExceededError(
                    "label_value_length",
                    f"{row.name}: label {name[:64]} of {len(value)} characters, "
                    f"over {limits.label_value_length_limit}",
                )


def count_samples(text: str) -> int:
    """The page's sample lines (not comments, not blank), counted before any parsing: a
    page past the sample limit costs no parse."""
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


class ScrapeInput:
    name = "scrape"

    def __init__(
        self,
        bus: Bus,
        nodes: Nodes,
        interval: float,
        timeout: float,
        clock: Callable[[], float],
        extra_labels: tuple[str, ...] = (),
        limits: ScrapeLimits | None = None,
    ) -> None:
        self.bus = bus
        self.nodes = nodes
        self.interval = interval
        self.timeout = timeout  # one scrape of one target
        self.clock = clock
        self.extra_labels = extra_labels
        self.limits = limits or ScrapeLimits()
        self.watch = ContainerWatch(bus, "scrape", self._changed)
        self.target_up: dict[str, bool] = {}
        # (container id, counter) → (when, value) at the last scrape, for RATES
        self._previous: dict[tuple[str, str], tuple[float, float]] = {}
        self.config_errors = LabelErrors("scrape", "ebbflow_scrape_config_errors", log)
        self.exceeded: collections.Counter[str] = collections.Counter()
        self.running = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- targets ---------------------------------------------------------------------------
    def spec_of(self, info: ContainerInfo) -> ScrapeSpec | None:
        spec, errors = parse_scrape(info.labels)
        self.config_errors.record(info.name, errors)
        return spec

    def targets(
        self, containers: Iterable[ContainerInfo]
    ) -> list[tuple[ContainerInfo, ScrapeSpec]]:
        found = []
        seen = []
        for info in containers:
            seen.append(info.name)
            spec = self.spec_of(info)
            if spec is not None:
                found.append((info, spec))
        self.config_errors.keep_only(seen)
        return found

    def _changed(self, info: ContainerInfo, running: bool) -> None:
        task = self._tasks.pop(info.id, None)
        if task is not None:
            task.cancel()
        if not running:
            self.config_errors.record(info.name, ())
            self.target_up.pop(info.id, None)
            self._previous = {k: v for k, v in self._previous.items() if k[0] != info.id}
            self.bus.publish(SampleBatch(SOURCE_PREFIX + info.id, self.clock(), ()))
            return
        spec = self.spec_of(info)
        if spec is not None and self._group is not None:
            self._tasks[info.id] = self._group.create_task(self._target_loop(info, spec))

    async def _target_loop(self, info: ContainerInfo, spec: ScrapeSpec) -> None:
        # each target at an offset of its own in the interval, as Prometheus spreads them
        ticks = Ticks(self.interval, self.interval * random.uniform(0, 1))
        while True:
            await ticks.wait()
            assert self._session is not None
            samples = await self.scrape(self._session, info, spec, self.clock())
            self.bus.publish(SampleBatch(SOURCE_PREFIX + info.id, self.clock(), tuple(samples)))

    # -- one scrape --------------------------------------------------------------------------
    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> tuple[str, str]:
        """(body as text, Content-Type), the body bounded; bytes that are not UTF-8 are
        replaced, never a reason for a huge error message."""
        async with (
            asyncio.timeout(self.timeout),
            session.get(url, headers={"Accept": ACCEPT}, allow_redirects=False) as resp,
        ):
            resp.raise_for_status()
            try:
                body = await read_bounded(resp, self.limits.body_size_limit, url)
            except BodyTooLargeError as err:
                raise LimitExceededError("body_size", str(err)) from None
            return body.decode("utf-8", errors="replace"), resp.headers.get("Content-Type", "")

    def _parse(self, spec: ScrapeSpec, text: str, content_type: str) -> list[Row]:
        if count_samples(text) > self.limits.sample_limit:
            raise LimitExceededError(
                "sample", f"over {self.limits.sample_limit} samples (sample_limit)"
            )
        rows = PARSERS[spec.format](text, content_type)
        if len(rows) > self.limits.sample_limit:
            raise LimitExceededError(
                "sample", f"{len(rows)} samples, over {self.limits.sample_limit} (sample_limit)"
            )
        check_rows(rows, self.limits)
        return rows

    async def scrape(
        self, session: aiohttp.ClientSession, info: ContainerInfo, spec: ScrapeSpec, now: float
    ) -> list[Sample]:
        identity = container_labels(info, self.extra_labels)
        up_labels = labels_of({**identity, "format": spec.format})
        url = spec.url(info.address) if info.address else ""
        try:
            if not url:
                raise ValueError("the container has no network address")
            text, content_type = await self._fetch(session, url)
            rows = self._parse(spec, text, content_type)
        except Exception as err:  # this target's failure only: the others still count
            if isinstance(err, LimitExceededError):
                self.exceeded[err.limit] += 1
            if self.target_up.get(info.id, True):
                log.warning("container %s: scrape of %s failed: %r", info.name, url, err)
            self.target_up[info.id] = False
            down = [UP.labelled(0.0, now, up_labels)]
            if spec.format in DOWN:
                row = DOWN[spec.format]
                down.append(
                    Sample(row.name, row.value, labels_of(identity), now, row.kind, row.help)
                )
            return down
        if not self.target_up.get(info.id, True):
            log.info("container %s: scrape recovered", info.name)
        self.target_up[info.id] = True
        samples = [UP.labelled(1.0, now, up_labels)]
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

    # -- the component -------------------------------------------------------------------------
    async def run(self) -> None:
        self.running = True
        self._tasks.clear()  # after a restart: those tasks ended with the last group
        try:
            async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
                self._session, self._group = session, group
                for info in list(self.watch.running.values()):
                    self._changed(info, True)
                await self.watch.follow()
        finally:
            self.running = False
            self._group = self._session = None

    async def collect_once(self) -> list[Sample]:
        """Every labelled running container scraped once, concurrently."""
        now = self.clock()
        targets = self.targets(await self.nodes.running_containers())
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(*(self.scrape(session, i, s, now) for i, s in targets))
        return [sample for samples in results for sample in samples]

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield INPUT_UP.sample(1.0 if self.running else 0.0, now, self.name)
        yield TARGETS.sample(len(self._tasks), now)
        for limit in LIMITS:
            yield EXCEEDED.sample(self.exceeded[limit], now, limit)
        yield from self.config_errors.telemetry(now)
