"""The delivery pipeline against a real HTTP server on loopback that misbehaves on cue."""

import asyncio
import logging
from pathlib import Path

import pytest
from aiohttp import web

from ebbflow.bus import Bus
from ebbflow.exporters.influxdb import InfluxConfig, InfluxOutput
from ebbflow.exporters.pipeline import BufferedOutput, DeliveryOptions, SendError
from ebbflow.model import Sample, SampleBatch
from tests.receiver import Handler, LoopbackServer

from ..conftest import free_port


class Server(LoopbackServer):
    """Records every line written; `mode` says how to answer."""

    def __init__(self) -> None:
        super().__init__(free_port())
        self.lines: list[str] = []
        self.mode = "ok"
        self.max_lines = 10**9
        self.requests = 0

    def routes(self) -> dict[str, Handler]:
        return {"/write": self.write, "/api/v2/write": self.write}

    async def write(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = (await request.read()).decode()
        lines = body.split("\n") if body else []
        if self.mode == "busy":
            return web.Response(status=503, text="overloaded", headers={"Retry-After": "0.05"})
        if self.mode == "bad":
            return web.Response(status=400, text='{"error":"unable to parse \'x y\': bad field"}')
        if self.mode == "unauthorized":
            return web.Response(status=401, text='{"error":"authorization failed"}')
        if len(lines) > self.max_lines:
            return web.Response(status=413, text="request entity too large")
        self.lines.extend(lines)
        return web.Response(status=204)


def samples(first: int, count: int) -> SampleBatch:
    return SampleBatch(
        "t",
        0.0,
        tuple(
            Sample("m", float(i), (("n", str(i)),), float(i)) for i in range(first, first + count)
        ),
    )


def output(bus: Bus, port: int, tmp_path: Path | None = None, **options: object) -> InfluxOutput:
    defaults = {
        "batch_size": 10,
        "flush_interval": 0.02,
        "backoff_initial": 0.02,
        "backoff_max": 0.1,
        "timeout": 2.0,
        "spool_dir": tmp_path,
    }
    return InfluxOutput(
        bus,
        "influxdb",
        InfluxConfig(url=f"http://127.0.0.1:{port}", api="v1"),
        DeliveryOptions(**(defaults | options)),
        lambda: 0.0,
    )  # type: ignore[arg-type]


def values(lines: list[str]) -> list[int]:
    return [int(float(line.split(" ")[1].removeprefix("value="))) for line in lines]


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110  (polling a condition is the point)
            await asyncio.sleep(0.01)


@pytest.fixture
async def server():  # type: ignore[no-untyped-def]
    s = Server()
    await s.start()
    yield s
    await s.stop()


async def test_retries_busy_and_splits_too_large(server: Server) -> None:
    bus = Bus()
    out = output(bus, server.port, batch_size=40)
    server.mode, server.max_lines = "busy", 15
    task = asyncio.create_task(out.run())
    bus.publish(samples(0, 100))
    await until(lambda: out.retries >= 3)
    server.mode = "ok"
    await until(lambda: len(server.lines) == 100)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert values(server.lines) == list(range(100))  # all, once, in order
    assert out.sent == 100 and sum(out.dropped.values()) == 0


async def test_a_permanent_error_drops_with_the_servers_answer(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    bus = Bus()
    out = output(bus, server.port)
    server.mode = "bad"
    task = asyncio.create_task(out.run())
    with caplog.at_level(logging.ERROR, "ebbflow.exporters"):
        bus.publish(samples(0, 10))
        await until(lambda: out.dropped["rejected"] == 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert "output influxdb: dropped 10 samples the server rejected" in caplog.text
    assert """400: {"error":"unable to parse 'x y': bad field"}""" in caplog.text
    metrics = {(s.name, s.label("reason")): s.value for s in out.telemetry(0)}
    assert metrics[("ebbflow_output_dropped_samples_total", "rejected")] == 10


async def test_refused_credentials_keep_the_samples_until_fixed(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    bus = Bus()
    out = output(bus, server.port)
    server.mode = "unauthorized"
    task = asyncio.create_task(out.run())
    with caplog.at_level(logging.ERROR, "ebbflow.exporters"):
        bus.publish(samples(0, 10))
        await until(lambda: out.retries >= 2)
        assert not out.last_send_ok and out.sent == 0 and sum(out.dropped.values()) == 0
        server.mode = "ok"  # the operator fixed the token
        await until(lambda: len(server.lines) == 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert values(server.lines) == list(range(10))
    assert caplog.text.count("output influxdb: the server refused its settings") == 1
    assert '401: {"error":"authorization failed"}' in caplog.text


async def test_while_down_everything_reaches_the_disk_within_a_flush_interval(
    server: Server, tmp_path: Path
) -> None:
    """Memory is never the only copy for long while the server is away, so a SIGKILL
    loses at most one flush interval."""
    port = server.port
    await server.stop()
    bus = Bus()
    out = output(bus, port, tmp_path, flush_interval=0.05)
    task = asyncio.create_task(out.run())
    bus.publish(samples(0, 25))  # 2.5 batches, far below the memory bound
    await until(lambda: not out.last_send_ok and not out.buffer)
    spool = out.spool
    assert spool is not None
    on_disk = [int(s.value) for batch in spool.pending() for s in batch]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert on_disk == list(range(25))  # all of it, in order, before any shutdown


async def test_down_server_spools_and_replays_in_order(server: Server, tmp_path: Path) -> None:
    port = server.port
    await server.stop()  # down: connection refused
    bus = Bus()
    out = output(bus, port, tmp_path, max_buffered=30)
    task = asyncio.create_task(out.run())
    for first in range(0, 200, 20):
        bus.publish(samples(first, 20))
        await asyncio.sleep(0.01)  # samples keep flowing while it is down
    await until(lambda: out.spool is not None and out.spool.pending_bytes > 0)
    assert len(out.buffer) <= 30
    await server.start()
    # The spool's offset moves once the server's answer is in, a moment after the server
    # has the samples: wait for both (this raced in CI when it waited for the samples only).
    await until(
        lambda: len(server.lines) == 200 and out.spool is not None and not out.spool.pending_bytes
    )
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(values(server.lines)) == list(range(200))  # every sample, none twice
    assert values(server.lines)[:50] == sorted(values(server.lines)[:50])  # spool first, in order
    assert out.spool is not None and out.spool.pending_bytes == 0


async def test_spool_survives_a_restart(server: Server, tmp_path: Path) -> None:
    port = server.port
    await server.stop()
    bus = Bus()
    first = output(bus, port, tmp_path)
    task = asyncio.create_task(first.run())
    bus.publish(samples(0, 55))
    await asyncio.sleep(0.1)
    task.cancel()  # stopping with everything undelivered: it goes to the spool
    await asyncio.gather(task, return_exceptions=True)
    await server.start()
    second = output(Bus(), port, tmp_path)  # a new process, the same spool directory
    task = asyncio.create_task(second.run())
    await until(lambda: len(server.lines) == 55)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sorted(values(server.lines)) == list(range(55))


async def test_v1_and_v2_endpoints(server: Server) -> None:
    v2 = InfluxOutput(
        Bus(),
        "influxdb",
        InfluxConfig(url=f"http://127.0.0.1:{server.port}", org="o", bucket="b", token="secret"),
        DeliveryOptions(),
        lambda: 0.0,
    )
    url, query, headers = v2.endpoint()
    assert url.endswith("/api/v2/write") and query["bucket"] == "b"
    assert headers == {"Authorization": "Token secret"}
    await v2.send(list(samples(0, 3).samples))
    assert values(server.lines) == [0, 1, 2]


class Failing(BufferedOutput):
    name = "failing"

    async def send(self, samples: list[Sample]) -> None:
        raise SendError("nope", retry=False)


async def test_memory_bound_without_spool_counts_the_loss() -> None:
    out = Failing(Bus(), DeliveryOptions(batch_size=5, max_buffered=10))
    out.accept(samples(0, 25).samples)
    assert len(out.buffer) <= 10 and out.dropped["buffer_full"] == 15


class Hanging(BufferedOutput):
    name = "hanging"

    async def send(self, samples: list[Sample]) -> None:
        await asyncio.sleep(60)  # cut off mid-send


async def test_a_batch_cut_off_mid_send_is_spooled(tmp_path: Path) -> None:
    bus = Bus()
    out = Hanging(bus, DeliveryOptions(batch_size=5, flush_interval=0.01, spool_dir=tmp_path))
    task = asyncio.create_task(out.run())
    bus.publish(samples(0, 12))
    await until(lambda: 0 < len(out.buffer) < 12)  # a batch is out, being sent
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert out.spool is not None
    spooled = []
    while (entry := out.spool.peek()) is not None:
        spooled += [int(s.value) for s in entry[0]]
        out.spool.commit(entry[1])
    assert spooled == list(range(12))  # nothing lost, order kept


async def test_batches_still_queued_on_the_bus_are_spooled_on_exit(tmp_path: Path) -> None:
    bus = Bus()
    out = Hanging(bus, DeliveryOptions(batch_size=5, spool_dir=tmp_path))
    bus.publish(samples(0, 7))  # never taken off the bus: the output stops first
    out.save_on_exit()
    assert out.spool is not None and out.spool.pending_bytes > 0
    entry = out.spool.peek()
    assert entry is not None and [int(s.value) for s in entry[0]] == [0, 1, 2, 3, 4]


async def test_repeated_samples_are_not_sent_again(server: Server) -> None:
    bus = Bus()
    out = output(bus, server.port)
    task = asyncio.create_task(out.run())
    bus.publish(samples(0, 5))
    repeat = samples(0, 5)
    bus.publish(SampleBatch(repeat.source, 0.0, repeat.samples, repeat=True))
    bus.publish(samples(5, 5))
    await until(lambda: len(server.lines) == 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert values(server.lines) == list(range(10))
