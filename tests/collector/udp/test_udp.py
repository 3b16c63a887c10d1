"""The UDP listener on a real loopback socket."""

import asyncio
import logging
import socket

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.udp import UdpConfig, UdpInput
from ebbflow.collector.udp.listener import KernelDrops, open_socket
from ebbflow.model import SampleBatch

from ...conftest import bound_address


async def started(bus: Bus, **options: object) -> tuple[UdpInput, asyncio.Task[None]]:
    udp = UdpInput(bus, UdpConfig(listen="127.0.0.1:0", **options), lambda: 1000.0)
    task = asyncio.create_task(udp.run())
    await bound_address(udp)
    return udp, task


async def received(
    sub, udp: UdpInput, datagrams: int
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the batches held once `datagrams` were read (a burst may come as one batch)."""
    for _ in range(500):  # up to 5 s
        if udp.datagrams >= datagrams:
            break
        await asyncio.sleep(0.01)
    assert udp.datagrams == datagrams
    seen = {}
    while (batch := sub.get_nowait()) is not None:
        assert isinstance(batch, SampleBatch) and not batch.replace
        seen.update({(s.name, s.labels): s.value for s in batch.samples})
    return seen


async def test_datagrams_become_samples_and_garbage_is_survived(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = Bus()
    sub = bus.subscribe("t", SampleBatch)
    udp, task = await started(bus)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        send = lambda data: s.sendto(data, udp.bound)  # noqa: E731
        with caplog.at_level(logging.WARNING, "ebbflow.collector.udp"):
            send(b"http,route=/a latency_ms=12.5,requests=3i\nqueue depth=4")
            send(b"\xff\xfe not utf-8")
            send(b"this is not anything\njobs:2|c|#q:mail")  # one bad, one good line
            send(b"jobs:3|c|#q:mail\nreq:120|ms\nreq:80|ms\ntemp:20|g\ntemp:-5|g")
            seen = await received(sub, udp, 4)
    task.cancel()
    assert seen[("http_latency_ms", (("route", "/a"),))] == 12.5
    assert seen[("http_requests", (("route", "/a"),))] == 3
    assert seen[("queue_depth", ())] == 4
    assert seen[("jobs_total", (("q", "mail"),))] == 5  # counters accumulate
    assert seen[("req", ())] == 80 and seen[("req_count", ())] == 2 and seen[("req_sum", ())] == 200
    assert seen[("temp", ())] == 15  # a signed gauge is a delta
    assert (udp.datagrams, udp.malformed) == (4, 2)
    assert "malformed line from 127.0.0.1:" in caplog.text  # the sender is named
    assert caplog.text.count("malformed line") == 1  # and not once per line


async def test_series_cap_and_expiry() -> None:
    bus = Bus()
    udp = UdpInput(bus, UdpConfig(max_series=2, expire_after=10), clock := _Clock())
    udp.parse_datagram(b"a:1|g\nb:1|g\nc:1|g", "test")
    assert len(udp.series) == 2 and udp.series_dropped == 1
    clock.now += 20
    udp.parse_datagram(b"a:2|g", "test")
    full = bus.subscribe("t", SampleBatch)
    udp.retire_expired()
    batch = full.get_nowait()
    assert isinstance(batch, SampleBatch) and batch.replace and batch.repeat
    assert [(s.name, s.value) for s in batch.samples] == [("a", 2.0)]


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_bad_line_costs_only_itself_and_never_a_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    udp = UdpInput(Bus(), UdpConfig(), _Clock())
    datagram = "\n".join(
        [
            "queue,service=shop/api depth=nan",
            "queue,service=shop/api depth=" + "1" * 400 + "i",
            "queue,service=shop/api depth=" + "1" * 400,
            "queue,service=shop/web depth=7i",
        ]
    ).encode()
    with caplog.at_level(logging.WARNING, "ebbflow.collector.udp"):
        out = udp.parse_datagram(datagram, "test")
        # An error nobody foresaw in one line: still that line's, counted.
        monkeypatch.setattr(
            "ebbflow.collector.udp.collector.parse_lines",
            lambda line, precision: (_ for _ in ()).throw(RecursionError("deep")),
        )
        assert udp.parse_datagram(b"a b=1\nc d=2", "test") == []
    assert [(s.name, s.labels, s.value) for s in out] == [
        ("queue_depth", (("service", "shop/web"),), 7.0)
    ]
    assert udp.malformed == 5
    assert not any(r.exc_info for r in caplog.records)


def test_lines_end_at_newline_only() -> None:
    udp = UdpInput(Bus(), UdpConfig(), _Clock())
    out = udp.parse_datagram("m,t=a\u2028b v=1\r\nm,t=c\x1cd\vx v=2".encode(), "test")
    # U+2028 is data; \x1c and \v are control characters: that line is refused, whole
    assert [(s.labels, s.value) for s in out] == [((("t", "a\u2028b"),), 1.0)]
    assert udp.malformed == 1


def test_names_that_meet_are_refused_not_merged() -> None:
    udp = UdpInput(Bus(), UdpConfig(), _Clock())
    out = udp.parse_datagram(b"cpu usage_idle=1\ncpu_usage idle=2\ncpu-usage idle=3", "test")
    assert [(s.name, s.value) for s in out] == [("cpu_usage_idle", 1.0)]
    assert (udp.names.collisions, udp.malformed) == (2, 2)
    out = udp.parse_datagram(b"m,ho-st=a,ho_st=b v=1", "test")
    assert out == [] and udp.malformed == 3  # two tags, one label name


def test_statsd_and_dogstatsd_types() -> None:
    udp = UdpInput(Bus(), UdpConfig(set_interval=10), clock := _Clock())
    lines = [
        "hits:1|c",
        "hits:2|c|@0.5",
        "hits:-1|c",  # a decrement: refused, counted
        "users:a|s",
        "users:b|s",
        "users:a|s",
        "lat:1:2:3|d|#canary",
        "lat:5|d",
        "_sc|db|2|h:web1|#env:prod|m:down",
        "_e{4,4}:boom|text|t:error",
    ]
    out = udp.parse_datagram("\n".join(lines).encode(), "test")
    last = {(s.name, s.labels): s.value for s in out}
    assert last[("hits_total", ())] == 5  # 1 + 2 / 0.5
    assert udp.decrements == 1 and udp.malformed == 1
    assert last[("users", ())] == 2  # unique members this interval
    assert last[("lat_count", (("canary", "true"),))] == 3
    assert last[("lat_count", ())] == 1  # the valueless tag kept them apart
    assert last[("lat_sum", (("canary", "true"),))] == 6
    assert (
        last[
            ("dogstatsd_service_check_status", (("check", "db"), ("env", "prod"), ("host", "web1")))
        ]
        == 2
    )
    assert last[("dogstatsd_events_total", (("alert_type", "error"), ("priority", "normal")))] == 1
    clock.now += 11  # a new set interval
    out = udp.parse_datagram(b"users:c|s", "test")
    assert [(s.name, s.value) for s in out] == [("users", 1.0)]


def test_expiry_counts_from_arrival_not_the_client_timestamp() -> None:
    bus = Bus()
    udp = UdpInput(bus, UdpConfig(expire_after=10), clock := _Clock())
    clock.now = 1_000_000.0
    udp.parse_datagram(b"old v=1 1000000000\nold:1|g|T1", "test")  # stamped 999,999 s ago
    full = bus.subscribe("t", SampleBatch)
    udp.retire_expired()
    batch = full.get_nowait()
    assert isinstance(batch, SampleBatch)
    assert sorted(s.name for s in batch.samples) == ["old", "old_v"]


def test_tag_values_are_cut_to_the_bound_and_counted() -> None:
    udp = UdpInput(Bus(), UdpConfig(max_label_value_length=16, max_tags=2), _Clock())
    out = udp.parse_datagram(b"m,t=" + b"x" * 60_000 + b" v=1\nm,a=1,b=2,c=3 v=1", "test")
    assert [(s.labels, s.value) for s in out] == [((("t", "x" * 16),), 1.0)]
    assert (udp.truncated, udp.malformed) == (1, 1)  # the line with 3 tags: max_tags


def test_kernel_drops_are_read_from_the_socket_table() -> None:
    """A socket nobody reads, with the smallest buffer: what overflows is counted by the
    kernel, and read back for this socket alone."""
    sock = open_socket(("127.0.0.1", 0), 4096)
    try:
        drops = KernelDrops(sock)
        assert drops.read() == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(200):
                sender.sendto(b"x" * 1000, sock.getsockname())
        assert drops.read() > 0
    finally:
        sock.close()


async def test_beyond_loopback_it_warns_that_datagrams_carry_no_authentication(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No datagram is sent: the wildcard listener is opened and closed."""
    with caplog.at_level(logging.WARNING, logger="ebbflow.collector.udp"):
        for listen in ("127.0.0.1:0", "0.0.0.0:0"):
            udp = UdpInput(Bus(), UdpConfig(listen=listen), lambda: 1000.0)
            task = asyncio.create_task(udp.run())
            await bound_address(udp)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    warned = [r.getMessage() for r in caplog.records if "beyond loopback" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("udp: listening on 0.0.0.0, beyond")
