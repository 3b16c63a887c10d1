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
import socket
from collections.abc import Callable, Iterable
from typing import Any

from ebbflow.bus import Bus
from ebbflow.metrics import Desc
from ebbflow.model import Labels, MetricKind, Sample, SampleBatch, labels_of
from ebbflow.web.listener import loopback

from .config import UdpConfig
from .lineprotocol import LinePoint, LineProtocolError, parse_lines
from .listener import KernelDrops, open_socket
from .names import NameOwners, label_name, metric_name
from .statsd import ServiceCheck, StatsdEvent, StatsdPoint, looks_like_statsd, parse_statsd

log = logging.getLogger("ebbflow.collector.udp")

SeriesKey = tuple[str, Labels]
LOG_EVERY = 10.0
DRAIN = 256  # datagrams read per wake-up at most, so a flood never starves the loop
MAX_DATAGRAM = 65535
CACHED_TAGS_LENGTH = 1024  # characters of tag values a cached tag set may hold
SERVICE_CHECK_HELP = "A DogStatsD service check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."
EVENTS_HELP = "DogStatsD events received, by alert type and priority."


DATAGRAMS = Desc("ebbflow_udp_datagrams_total", "Datagrams received.", "counter")
SAMPLES_IN = Desc("ebbflow_udp_samples_total", "Samples parsed from datagrams.", "counter")
MALFORMED = Desc("ebbflow_udp_malformed_total", "Lines that could not be parsed.", "counter")
SERIES_DROPPED = Desc(
    "ebbflow_udp_series_dropped_total", "New series refused past max_series.", "counter"
)
TRUNCATED = Desc(
    "ebbflow_udp_labels_truncated_total", "Tag values cut to max_label_value_length.", "counter"
)
DECREMENTS = Desc(
    "ebbflow_udp_counter_decrements_total",
    "StatsD counter lines with a negative value, refused (each also malformed).",
    "counter",
)
COLLISIONS = Desc(
    "ebbflow_udp_name_collisions_total",
    "Fields or StatsD names refused: their Prometheus name belongs to another.",
    "counter",
)
EVENTS = Desc("ebbflow_udp_events_total", "DogStatsD events received.", "counter")
SERIES = Desc("ebbflow_udp_series", "Series the UDP input holds.")
RECEIVE_BUFFER = Desc(
    "ebbflow_udp_receive_buffer_bytes", "The socket's receive buffer, as the kernel reports it."
)
KERNEL_DROPS = Desc(
    "ebbflow_udp_kernel_drops_total",
    "Datagrams the kernel dropped because the receive buffer was full.",
    "counter",
)


class UdpInput:
    name = "udp"

    def __init__(self, bus: Bus, config: UdpConfig, clock: Callable[[], float]) -> None:
        self.bus = bus
        self.config = config
        self.clock = clock
        host, _, port = config.listen.rpartition(":")
        self.address = (host.strip("[]") or "127.0.0.1", int(port))
        self.bound: tuple[str, int] | None = None
        self.series: dict[SeriesKey, tuple[Sample, float]] = {}  # latest sample, last update
        self.sets: dict[SeriesKey, tuple[float, set[str]]] = {}  # interval start, members
        self.names = NameOwners(config.max_series)
        self.datagrams = self.samples_in = self.malformed = self.series_dropped = 0
        self.truncated = self.decrements = self.events = 0
        self.receive_buffer = 0
        self.kernel_drops: KernelDrops | None = None
        self._arrival = 0.0  # when the datagram being parsed came
        self._label_cache: dict[tuple[tuple[str, str], ...], tuple[Labels, int]] = {}
        self._field_names: dict[tuple[str, str], str] = {}
        self._name_cache: dict[tuple[str, str], str] = {}
        self._last_logged: dict[str, float] = {}

    # -- parsing -----------------------------------------------------------------------
    def _set(  # noqa: PLR0913 (the hot path of every datagram: no argument object)
        self,
        name: str,
        labels: Labels,
        value: float,
        kind: MetricKind,
        now: float,
        out: list[Sample],
        add: bool = False,
        help_text: str = "",
    ) -> None:
        key = (name, labels)
        previous = self.series.get(key)
        if previous is None and len(self.series) >= self.config.max_series:
            self.series_dropped += 1
            return
        if add and previous is not None:
            value += previous[0].value
        sample = Sample(name, value, labels, now, kind, help_text)
        self.series[key] = (sample, self._arrival)  # expiry counts from arrival
        out.append(sample)

    def _labels(self, tags: dict[str, str], extra: dict[str, str] | None = None) -> Labels:
        """Tags as labels, within the byte bounds; two tags that meet on one label name
        are an error, not a silent merge. Senders repeat their tag sets, so each is
        converted once and then found by its items."""
        key = tuple(tags.items()) if extra is None else (*tags.items(), *extra.items())
        cached = self._label_cache.get(key)
        if cached is None:
            before = self.truncated
            cached = self._convert_labels(tags, extra), self.truncated - before
            # Only short tag sets are kept: the cache's keys are the raw values, and a
            # hostile sender's 60 kB tags must cost memory once, not once per line.
            if sum(len(v) for _, v in key) <= CACHED_TAGS_LENGTH:
                if len(self._label_cache) >= 4 * self.config.max_series:
                    self._label_cache.clear()
                self._label_cache[key] = cached
        else:
            self.truncated += cached[1]  # each line's cut values count
        return cached[0]

    def _convert_labels(self, tags: dict[str, str], extra: dict[str, str] | None) -> Labels:
        limit = self.config.max_label_value_length
        if len(tags) > self.config.max_tags:
            raise ValueError(f"{len(tags)} tags, more than max_tags {self.config.max_tags}")
        labels: dict[str, str] = {}
        origin: dict[str, str] = {}
        for key, value in {**tags, **(extra or {})}.items():
            if len(key) > self.config.max_name_length:
                raise ValueError(f"tag key longer than {self.config.max_name_length}")
            if len(value) > limit:
                self.truncated += 1
                value = value[:limit]
            name = label_name(key)
            if name in origin:
                raise ValueError(f"tags {origin[name]!r} and {key!r} are both the label {name!r}")
            origin[name] = key
            labels[name] = value
        return labels_of(labels)

    def _name(self, text: str, source: str) -> str:
        """The Prometheus name of `text`, claimed for `source` (remembered until series
        are retired, when a name may change hands)."""
        cached = self._name_cache.get((text, source))
        if cached is not None:
            return cached
        if len(text) > self.config.max_name_length:
            raise ValueError(f"name longer than {self.config.max_name_length}")
        name = metric_name(text)
        owner = self.names.claim(name, source)
        if owner is not None:
            raise ValueError(f"{source} is the name {name!r}, which {owner} already has")
        if len(self._name_cache) < 4 * self.config.max_series:
            self._name_cache[(text, source)] = name
        return name

    def _line_point(self, point: LinePoint, now: float, out: list[Sample], sender: str) -> None:
        """The hot path (one call per line): `_set` inlined for gauges."""
        labels = self._labels(point.tags)
        at = point.timestamp or now
        series, names = self.series, self._field_names
        for key, value in point.fields.items():
            if isinstance(value, str):
                continue  # a string has no number to export
            name = names.get((point.measurement, key))
            if name is None:
                try:
                    name = self._name(
                        f"{point.measurement}_{key}",
                        f"measurement {point.measurement!r} field {key!r}",
                    )
                except ValueError as err:  # that field only: the line's others still count
                    self._reject(sender, point.measurement, str(err))
                    continue
                if len(names) < 4 * self.config.max_series:
                    names[(point.measurement, key)] = name
            series_key = (name, labels)
            if series_key not in series and len(series) >= self.config.max_series:
                self.series_dropped += 1
                continue
            sample = Sample(name, float(value), labels, at, "gauge")
            series[series_key] = (sample, self._arrival)
            out.append(sample)

    def _statsd(self, line: str, now: float, out: list[Sample], sender: str) -> None:
        item = parse_statsd(line)
        if isinstance(item, ServiceCheck):
            tags = {
                **item.tags,
                "check": item.name,
                **({"host": item.hostname} if item.hostname else {}),
            }
            name = self._name("dogstatsd_service_check_status", "DogStatsD service checks")
            self._set(
                name,
                self._labels(tags),
                item.status,
                "gauge",
                item.timestamp or now,
                out,
                help_text=SERVICE_CHECK_HELP,
            )
            return
        if isinstance(item, StatsdEvent):
            self.events += 1
            level = logging.WARNING if item.alert_type in ("error", "warning") else logging.INFO
            log.log(
                level,
                "udp: event from %s (%s): %.200s: %.500s",
                sender,
                item.alert_type,
                item.title,
                item.text,
            )
            tags = {**item.tags, "alert_type": item.alert_type, "priority": item.priority}
            name = self._name("dogstatsd_events_total", "DogStatsD events")
            self._set(
                name, self._labels(tags), 1, "counter", now, out, add=True, help_text=EVENTS_HELP
            )
            return
        self._statsd_point(item, now, out)

    def _statsd_point(self, point: StatsdPoint, now: float, out: list[Sample]) -> None:
        source = f"StatsD {point.name!r}"
        extra = {"container_id": point.container_id} if point.container_id else None
        labels = self._labels(point.tags, extra)
        at = point.timestamp or now
        if point.kind == "c":
            if any(v < 0 for v in point.values):
                self.decrements += 1
                raise ValueError("a counter only goes up: a decrement is refused (send a gauge)")
            name = self._name(f"{point.name}_total", source)
            total = sum(point.values) / point.sample_rate
            self._set(name, labels, total, "counter", at, out, add=True)
        elif point.kind == "g":
            name = self._name(point.name, source)
            for value in point.values:
                self._set(name, labels, value, "gauge", at, out, add=point.delta)
        elif point.kind == "s":
            name = self._name(point.name, source)
            started, members = self.sets.get((name, labels), (now, set()))
            if now - started >= self.config.set_interval:
                started, members = now, set()
            members.update(point.members)
            self.sets[(name, labels)] = (started, members)
            self._set(name, labels, len(members), "gauge", at, out)
        else:  # timers, histograms, distributions: last value, count and sum
            name = self._name(point.name, source)
            for value in point.values:
                self._set(name, labels, value, "gauge", at, out)
                self._set(
                    f"{name}_count", labels, 1 / point.sample_rate, "counter", at, out, add=True
                )
                self._set(
                    f"{name}_sum", labels, value / point.sample_rate, "counter", at, out, add=True
                )

    def parse_datagram(self, data: bytes, sender: str) -> list[Sample]:
        now = self._arrival = self.clock()
        out: list[Sample] = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._reject(sender, repr(data[:60]), "not UTF-8")
            return out
        if self.config.format == "influx" or (self.config.format == "auto" and "|" not in text):
            self._line_protocol(text, now, out, sender)  # no StatsD line can be in it
            return out
        # Lines end at \n only (\v, \x1c and U+2028 are data); in `auto`, runs of lines
        # that are not StatsD are line protocol, where a string field may span lines.
        pending: list[str] = []
        for line in text.split("\n"):
            if self.config.format == "statsd" or looks_like_statsd(line):
                if pending:
                    self._line_protocol("\n".join(pending), now, out, sender)
                    pending = []
                self._guarded(self._statsd, line.removesuffix("\r"), now, out, sender)
            else:
                pending.append(line)
        if pending:
            self._line_protocol("\n".join(pending), now, out, sender)
        return out

    def _line_protocol(self, text: str, now: float, out: list[Sample], sender: str) -> None:
        try:
            entries = list(parse_lines(text, self.config.precision))
        except Exception:  # a parser bug: then line by line, so it costs only its lines
            entries = []
            for line in text.split("\n"):
                try:
                    entries += parse_lines(line, self.config.precision)
                except Exception as err:
                    self._reject(sender, line, f"{type(err).__name__}: {err}")
        for entry in entries:
            if isinstance(entry, LineProtocolError):
                self._reject(sender, entry.text, str(entry))
            else:
                self._guarded(self._line_point, entry, now, out, sender)

    def _guarded(
        self, handle: Callable[..., None], item: Any, now: float, out: list[Sample], sender: str
    ) -> None:
        """One line's failure, whatever it is, is that line's: counted, and logged at most
        every 10 s per sender."""
        try:
            handle(item, now, out, sender)
        except (ValueError, IndexError) as err:
            self._reject(sender, str(getattr(item, "measurement", item)), str(err))
        except Exception as err:  # overflow, recursion, anything: still this line's
            self._reject(
                sender, str(getattr(item, "measurement", item)), f"{type(err).__name__}: {err}"
            )

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

    # -- the socket --------------------------------------------------------------------
    def readable(self, sock: socket.socket) -> None:
        """Everything the socket holds now (up to DRAIN datagrams), as one batch on the bus:
        one wake-up and one publish for a burst, not one per datagram (asyncio's datagram
        transport reads one per loop turn)."""
        samples: list[Sample] = []
        for _ in range(DRAIN):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as err:  # e.g. an ICMP error queued on the socket: not data
                log.debug("udp: receive: %s", err)
                break
            self.datagrams += 1
            samples += self.parse_datagram(data, f"{addr[0]}:{addr[1]}")
        if samples:
            self.samples_in += len(samples)
            self.bus.publish(SampleBatch(self.name, self.clock(), tuple(samples), replace=False))

    def retire_expired(self) -> None:
        """Forget series not refreshed in time, and publish what is left as the full set."""
        now = self.clock()
        horizon = now - self.config.expire_after
        self.series = {k: v for k, v in self.series.items() if v[1] >= horizon}
        self.sets = {k: v for k, v in self.sets.items() if k in self.series}
        self.names.keep_only({name for name, _ in self.series})
        self._name_cache.clear()
        self._field_names.clear()
        latest = tuple(s for s, _ in self.series.values())
        self.bus.publish(SampleBatch(self.name, now, latest, repeat=True))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sock = open_socket(self.address, self.config.read_buffer)
        self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.kernel_drops = KernelDrops(sock)
        loop.add_reader(sock.fileno(), self.readable, sock)
        try:
            self.bound = sock.getsockname()[:2]
            log.info(
                "udp: listening on %s:%s (receive buffer %d bytes)",
                *self.bound,
                self.receive_buffer,
            )
            if not loopback(str(self.bound[0])):
                log.warning(
                    "udp: listening on %s, beyond loopback: datagrams carry no "
                    "authentication, so whoever reaches it may write samples the rules act "
                    "on; bind to 127.0.0.1, or let only the senders through a firewall",
                    self.bound[0],
                )
            # The kernel reports twice what it was asked for (its bookkeeping share).
            if self.receive_buffer < self.config.read_buffer:
                log.warning(
                    "udp: the kernel gave a receive buffer of %d bytes, not the %d read_buffer "
                    "asks for (net.core.rmem_max; run as root to force it): bursts may be "
                    "dropped, see ebbflow_udp_kernel_drops_total",
                    self.receive_buffer,
                    self.config.read_buffer,
                )
            while True:
                await asyncio.sleep(min(60.0, self.config.expire_after / 2))
                self.retire_expired()
        finally:
            loop.remove_reader(sock.fileno())
            sock.close()

    async def collect_once(self) -> list[Sample]:
        """A push input has nothing to poll: what it holds (nothing, in a fresh process)."""
        return [sample for sample, _ in self.series.values()]

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield DATAGRAMS.sample(self.datagrams, now)
        yield SAMPLES_IN.sample(self.samples_in, now)
        yield MALFORMED.sample(self.malformed, now)
        yield SERIES_DROPPED.sample(self.series_dropped, now)
        yield TRUNCATED.sample(self.truncated, now)
        yield DECREMENTS.sample(self.decrements, now)
        yield COLLISIONS.sample(self.names.collisions, now)
        yield EVENTS.sample(self.events, now)
        yield SERIES.sample(len(self.series), now)
        yield RECEIVE_BUFFER.sample(self.receive_buffer, now)
        if self.kernel_drops is not None:
            yield KERNEL_DROPS.sample(self.kernel_drops.read(), now)
