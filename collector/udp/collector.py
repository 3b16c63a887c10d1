"""The UDP input: applications push line protocol or StatsD; each datagram is on the bus at once.

Datagrams become partial batches (they update only their own series), so a rule can act
on an application's number the moment it arrives. Counters accumulate here; a full batch
now and then retires series not refreshed within `expire_after`. A malformed line is
counted and logged with its sender (at most every 10 s per sender, never with a
traceback); whatever was wrong with it, it never stops the listener or the rest of its
datagram. Memory is bounded by bytes, not only by series: tag values are cut to
`max_label_value_length` (counted), and names, tag counts and series are capped.
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
        self.truncated = 0
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

    def _labels(self, tags: dict[str, str]) -> Labels:
        """Tags as labels, within the byte bounds."""
        limit = self.config.max_label_value_length
        if len(tags) > self.config.max_tags:
            raise ValueError(f"{len(tags)} tags, more than max_tags {self.config.max_tags}")
        labels = {}
        for key, value in tags.items():
            if len(key) > self.config.max_name_length:
                raise ValueError(f"tag key longer than {self.config.max_name_length}")
            if len(value) > limit:
                self.truncated += 1
                value = value[:limit]
            labels[label_name(key)] = value
        return labels_of(labels)

    def _name(self, text: str) -> str:
        if len(text) > self.config.max_name_length:
            raise ValueError(f"name longer than {self.config.max_name_length}")
        return metric_name(text)

    def _line_protocol(self, line: str, now: float, out: list[Sample]) -> None:
        point = parse_line_protocol(line)
        labels = self._labels(point.tags)
        for field, value in point.fields.items():
            name = self._name(f"{point.measurement}_{field}")
            self._set(name, labels, value, "gauge", point.timestamp or now, out)

    def _statsd(self, line: str, now: float, out: list[Sample]) -> None:
        point = parse_statsd(line)
        name = self._name(point.name)
        labels = self._labels(point.tags)
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
        for line in text.split("\n"):  # lines end at \n only: \v, \x1c, U+2028 are data
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            statsd = self.config.format == "statsd" or (
                self.config.format == "auto" and looks_like_statsd(line)
            )
            try:
                (self._statsd if statsd else self._line_protocol)(line, now, out)
            except (ValueError, IndexError) as err:
                self._reject(sender, line, str(err))
            except Exception as err:  # overflow, recursion, anything: still this line's
                self._reject(sender, line, f"{type(err).__name__}: {err}")
        return out

    def _reject(self, sender: str, line: str, why: str) -> None:
        self.malformed += 1
        now = self.clock()
        if now - self._last_logged.get(sender, float("-inf")) >= LOG_EVERY:
            self._last_logged[sender] = now
            log.warning(
                "udp: malformed line from %s: %.200s: %.120r (%d malformed so far)",
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
            (
                "ebbflow_udp_labels_truncated_total",
                self.truncated,
                "Tag values cut to max_label_value_length.",
            ),
        ):
            yield Sample(name, value, (), now, "counter", help_text)
        yield Sample(
            "ebbflow_udp_series", len(self.series), (), now, "gauge", "Series the UDP input holds."
        )
