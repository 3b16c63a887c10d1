"""The UDP input: applications push line protocol or StatsD; each datagram is on the bus at once.

Datagrams become partial batches (they update only their own series), so a rule can act
on an application's number the moment it arrives. Counters accumulate here; a full batch
now and then retires series not refreshed within `expire_after`. A malformed line is
counted and logged with its sender (at most every 10 s per sender); it never stops the
listener or the rest of its datagram.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from ebbflow.bus import Bus
from ebbflow.model import Labels, MetricKind, Sample, SampleBatch, labels_of

from .config import UdpConfig
from .parsers import label_name, looks_like_statsd, metric_name, parse_line_protocol, parse_statsd

log = logging.getLogger("ebbflow.collector.udp")

SeriesKey = tuple[str, Labels]
LOG_EVERY = 10.0


class UdpInput(asyncio.DatagramProtocol):
    name = "udp"

    def __init__(self, bus: Bus, config: UdpConfig, clock: Callable[[], float]) -> None:
        self.bus = bus
        self.config = config
        self.clock = clock
        host, _, port = config.listen.rpartition(":")
        self.address = (host.strip("[]") or "127.0.0.1", int(port))
        self.bound: tuple[str, int] | None = None
        self.series: dict[SeriesKey, tuple[Sample, float]] = {}  # latest sample, last update
        self.datagrams = self.samples_in = self.malformed = self.series_dropped = 0
        self._last_logged: dict[str, float] = {}

    # -- parsing -----------------------------------------------------------------------
    def _set(
        self,
        name: str,
        labels: Labels,
        value: float,
        kind: MetricKind,
        now: float,
        out: list[Sample],
        add: bool = False,
    ) -> None:
        key = (name, labels)
        previous = self.series.get(key)
        if previous is None and len(self.series) >= self.config.max_series:
            self.series_dropped += 1
            return
        if add and previous is not None:
            value += previous[0].value
        sample = Sample(name, value, labels, now, kind)
        self.series[key] = (sample, now)
        out.append(sample)

    def _line_protocol(self, line: str, now: float, out: list[Sample]) -> None:
        point = parse_line_protocol(line)
        labels = labels_of({label_name(k): v for k, v in point.tags.items()})
        for field, value in point.fields.items():
            name = metric_name(f"{point.measurement}_{field}")
            self._set(name, labels, value, "gauge", point.timestamp or now, out)

    def _statsd(self, line: str, now: float, out: list[Sample]) -> None:
        point = parse_statsd(line)
        name = metric_name(point.name)
        labels = labels_of({label_name(k): v for k, v in point.tags.items()})
        if point.kind == "c":
            self._set(
                f"{name}_total",
                labels,
                point.value / point.sample_rate,
                "counter",
                now,
                out,
                add=True,
            )
        elif point.kind == "g":
            self._set(name, labels, point.value, "gauge", now, out, add=point.delta)
        else:  # timers, histograms, distributions: last value, count and sum
            self._set(name, labels, point.value, "gauge", now, out)
            self._set(f"{name}_count", labels, 1 / point.sample_rate, "counter", now, out, add=True)
            self._set(
                f"{name}_sum",
                labels,
                point.value / point.sample_rate,
                "counter",
                now,
                out,
                add=True,
            )

    def parse_datagram(self, data: bytes, sender: str) -> list[Sample]:
        now = self.clock()
        out: list[Sample] = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._reject(sender, repr(data[:60]), "not UTF-8")
            return out
        for line in text.splitlines():
            if not line.strip():
                continue
            statsd = self.config.format == "statsd" or (
                self.config.format == "auto" and looks_like_statsd(line)
            )
            try:
                (self._statsd if statsd else self._line_protocol)(line, now, out)
            except (ValueError, IndexError) as err:
                self._reject(sender, line, str(err))
        return out

    def _reject(self, sender: str, line: str, why: str) -> None:
        self.malformed += 1
        now = self.clock()
        if now - self._last_logged.get(sender, float("-inf")) >= LOG_EVERY:
            self._last_logged[sender] = now
            log.warning(
                "udp: malformed line from %s: %s: %.120s (%d malformed so far)",
                sender,
                why,
                line,
                self.malformed,
            )

    # -- asyncio protocol --------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.datagrams += 1
        sender = ":".join(str(part) for part in addr[:2])
        samples = self.parse_datagram(data, sender)
        if samples:
            self.samples_in += len(samples)
            self.bus.publish(SampleBatch(self.name, self.clock(), tuple(samples), replace=False))

    def retire_expired(self) -> None:
        """Forget series not refreshed in time, and publish what is left as the full set."""
        now = self.clock()
        horizon = now - self.config.expire_after
        self.series = {k: v for k, v in self.series.items() if v[1] >= horizon}
        latest = tuple(s for s, _ in self.series.values())
        self.bus.publish(SampleBatch(self.name, now, latest, repeat=True))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=self.address)
        try:
            self.bound = transport.get_extra_info("sockname")[:2]
            log.info("udp: listening on %s:%s", *self.bound)
            while True:
                await asyncio.sleep(min(60.0, self.config.expire_after / 2))
                self.retire_expired()
        finally:
            transport.close()

    async def collect_once(self) -> list[Sample]:
        """A push input has nothing to poll: what it holds (nothing, in a fresh process)."""
        return [sample for sample, _ in self.series.values()]

    def telemetry(self, now: float) -> Iterable[Sample]:
        for name, value, help_text in (
            ("ebbflow_udp_datagrams_total", self.datagrams, "Datagrams received."),
            ("ebbflow_udp_samples_total", self.samples_in, "Samples parsed from datagrams."),
            ("ebbflow_udp_malformed_total", self.malformed, "Lines that could not be parsed."),
            (
                "ebbflow_udp_series_dropped_total",
                self.series_dropped,
                "New series refused past max_series.",
            ),
        ):
            yield Sample(name, value, (), now, "counter", help_text)
        yield Sample(
            "ebbflow_udp_series", len(self.series), (), now, "gauge", "Series the UDP input holds."
        )
