"""The remote-write receiver input: any Prometheus, vmagent, Telegraf or an ebbflow agent
writes samples here (Prometheus remote write 1.0), and they are on the bus at once, so a
rule can act on them: a sample with a `service` label feeds that service's policy, one
with a `name` label that container's.

Every request is bounded: its body (413 past `max_body_bytes`), what it decompresses to,
its series; a bad body is a 400 naming why. The newest sample of each series is kept for
`/metrics` until it expires; past `max_series` new series are dropped and counted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable

from aiohttp import web

from ebbflow.bus import Bus
from ebbflow.metrics import Desc
from ebbflow.model import Sample, SampleBatch
from ebbflow.names import SENDER_HEADER
from ebbflow.web.listener import Listener
from ebbflow.web.live import LiveWebConfig

from ..held import HeldSeries, Senders
from .config import RemoteWriteConfig
from .decode import BadRequestError, decode

log = logging.getLogger("ebbflow.collector.remote_write")

SOURCE = "remote_write"
REQUESTS = Desc(
    "ebbflow_remote_write_requests_total",
    "Remote-write requests received, by outcome (ok, bad_request, too_large).",
    "counter",
    ("outcome",),
)
SAMPLES = Desc("ebbflow_remote_write_samples_total", "Samples received by remote write.", "counter")
DROPPED = Desc(
    "ebbflow_remote_write_series_dropped_total",
    "New series refused past max_series.",
    "counter",
)
HELD = Desc("ebbflow_remote_write_series", "Series the remote-write receiver holds.")
SENDER_AGE = Desc(
    "ebbflow_remote_write_sender_age_seconds",
    "Seconds since each sender's last accepted write (X-Ebbflow-Sender: an ebbflow agent "
    "names itself; others are `unnamed`).",
    "gauge",
    ("sender",),
)


class RemoteWriteInput:
    name = "remote_write"

    def __init__(
        self,
        bus: Bus,
        config: RemoteWriteConfig,
        clock: Callable[[], float] = time.time,
        web: LiveWebConfig | None = None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.clock = clock
        host, _, port = config.listen.rpartition(":")
        self.listener = Listener(
            "remote_write", host.strip("[]"), int(port), web,
            "whoever reaches it may write samples the rules act on",
        )  # fmt: skip
        self.held = HeldSeries(config.max_series, config.expire_after, clock)
        self.requests: collections.Counter[str] = collections.Counter()
        self.samples_in = 0
        self.senders = Senders()  # sender → its last accepted write

    def take(self, body: bytes) -> list[Sample]:
        """A request's samples, the newest of each series, kept and returned."""
        now = self.clock()
        batch: list[Sample] = []
        for series in decode(body, self.config.max_uncompressed_bytes,
                             self.config.max_series_per_request):  # fmt: skip
            name = next((v for k, v in series.labels if k == "__name__"), "")
            if not name or not series.samples:
                continue
            labels = tuple(sorted((k, v) for k, v in series.labels if k != "__name__" and v))
            value, stamp = max(series.samples, key=lambda s: s[1])
            self.samples_in += len(series.samples)
            sample = Sample(name, value, labels, stamp / 1000 if stamp else now, "untyped")
            if self.held.keep(sample, now):
                batch.append(sample)
        return batch

    async def write(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > self.config.max_body_bytes:
            self.requests["too_large"] += 1
            return web.Response(status=413, text="body over max_body_bytes")
        body = await request.content.read(self.config.max_body_bytes + 1)
        if len(body) > self.config.max_body_bytes:
            self.requests["too_large"] += 1
            return web.Response(status=413, text="body over max_body_bytes")
        try:
            batch = self.take(body)
        except BadRequestError as err:
            self.requests["bad_request"] += 1
            return web.Response(status=400, text=str(err)[:300])
        self.requests["ok"] += 1
        self.senders.heard(request.headers.get(SENDER_HEADER, ""), self.clock())
        if batch:
            self.bus.publish(SampleBatch(SOURCE, self.clock(), tuple(batch), replace=False))
        return web.Response(status=204)

    def expire(self) -> None:
        if self.held.expire():  # what is left, as a full batch: the expired series leave /metrics
            self.bus.publish(SampleBatch(SOURCE, self.clock(), tuple(self.held.samples()),
                                         repeat=True))  # fmt: skip

    @property
    def bound(self) -> tuple[str, int] | None:
        return self.listener.bound

    async def run(self) -> None:
        app = web.Application(
            client_max_size=self.config.max_body_bytes + 1,
            middlewares=self.listener.middlewares(),
        )
        app.router.add_post("/api/v1/write", self.write)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = await self.listener.open(runner)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.listener.follow(runner, site))
                while True:
                    await asyncio.sleep(min(60.0, self.config.expire_after / 2))
                    self.expire()
        finally:
            await asyncio.shield(runner.cleanup())

    async def collect_once(self) -> list[Sample]:
        """A push input has nothing to poll: what it holds (nothing, in a fresh process)."""
        return self.held.samples()

    def telemetry(self, now: float) -> Iterable[Sample]:
        for outcome in ("ok", "bad_request", "too_large"):
            yield REQUESTS.sample(self.requests[outcome], now, outcome)
        yield SAMPLES.sample(self.samples_in, now)
        yield DROPPED.sample(self.held.dropped, now)
        yield HELD.sample(len(self.held), now)
        yield from self.listener.telemetry(now)
        for sender, last in sorted(self.senders.last.items()):
            yield SENDER_AGE.sample(max(0.0, now - last), now, sender)
