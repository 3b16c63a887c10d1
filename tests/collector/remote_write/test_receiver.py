"""The remote-write receiver: what ebbflow's own remote-write output sends is read back
exactly; a hostile body is a named 400 or 413, never a hang; every bound holds."""

from __future__ import annotations

import asyncio
import math
import struct
import urllib.error
import urllib.request

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebbflow.bus import Bus
from ebbflow.collector.remote_write import RemoteWriteConfig, RemoteWriteInput
from ebbflow.collector.remote_write.decode import BadRequestError, decode
from ebbflow.exporters.remote_write.protobuf import write_request
from ebbflow.model import Sample, SampleBatch, labels_of


def body(samples: list[Sample]) -> bytes:
    return bytes(cramjam.snappy.compress_raw(write_request(samples)))


SENT = [
    Sample("queue_depth", 42.0, labels_of({"service": "shop/web", "job": "app"}), 1700000000.5),
    Sample("queue_depth", 43.0, labels_of({"service": "shop/web", "job": "app"}), 1700000001.5),
    Sample("up", 1.0, labels_of({"instance": "a:1"}), 1700000000.0),
]


def test_what_the_output_writes_is_read_back_newest_sample_each() -> None:
    receiver = RemoteWriteInput(Bus(), RemoteWriteConfig(), lambda: 5.0)
    got = {(s.name, s.labels): (s.value, s.timestamp) for s in receiver.take(body(SENT))}
    assert got == {
        ("queue_depth", (("job", "app"), ("service", "shop/web"))): (43.0, 1700000001.5),
        ("up", (("instance", "a:1"),)): (1.0, 1700000000.0),
    }
    assert receiver.samples_in == 3


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "not a snappy block"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "not a snappy block"),
        (bytes(cramjam.snappy.compress_raw(b"\x0a\xff\x7f")), "runs past the message"),
        (b"\x80\x80\x80\x80\x08", "2147483648 bytes uncompressed, over 1024"),  # 2 GiB
    ],
)
def test_a_hostile_body_is_named(raw: bytes, why: str) -> None:
    with pytest.raises(BadRequestError, match=why):
        decode(raw, max_uncompressed=1024, max_series=10)


def test_the_series_bounds_hold() -> None:
    many = [Sample(f"m{n}", 1.0, (), 1.0) for n in range(30)]
    with pytest.raises(BadRequestError, match="over 10 series in one request"):
        decode(body(many), max_uncompressed=1 << 20, max_series=10)
    receiver = RemoteWriteInput(Bus(), RemoteWriteConfig(max_series=5), lambda: 5.0)
    assert len(receiver.take(body(many))) == 5 and receiver.held.dropped == 25


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_are_samples_or_a_named_error(raw: bytes) -> None:
    try:
        found = decode(bytes(cramjam.snappy.compress_raw(raw)), 1 << 16, 1000)
    except BadRequestError:
        return
    assert all(isinstance(s.labels, tuple) for s in found)


async def test_over_http_a_write_is_on_the_bus_and_bad_ones_are_refused() -> None:
    bus = Bus()
    batches = bus.subscribe("test", SampleBatch)
    receiver = RemoteWriteInput(bus, RemoteWriteConfig(listen="127.0.0.1:0", max_body_bytes=4096))
    task = asyncio.create_task(receiver.run())
    try:
        async with asyncio.timeout(5):
            while receiver.bound is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{receiver.bound[1]}/api/v1/write"

        def post(data: bytes, sender: str | None = None) -> int:
            headers = {"X-Ebbflow-Sender": sender} if sender is not None else {}
            request = urllib.request.Request(url, data=data, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as err:
                return int(err.code)

        assert await asyncio.to_thread(post, body(SENT)) == 204
        batch = batches.get_nowait()
        assert isinstance(batch, SampleBatch) and batch.source == "remote_write"
        assert {s.name for s in batch.samples} == {"queue_depth", "up"}
        assert await asyncio.to_thread(post, b"garbage") == 400
        assert await asyncio.to_thread(post, b"x" * 5000) == 413
        assert dict(receiver.requests) == {"ok": 1, "bad_request": 1, "too_large": 1}
        # each sender's last write, by the name it gives; a hostile name is not a label
        assert await asyncio.to_thread(post, body(SENT), "n2") == 204
        assert await asyncio.to_thread(post, body(SENT), 'n3"} {' + "x" * 500) == 204
        ages = {s.label("sender") for s in receiver.telemetry(receiver.clock() + 1)
                if s.name == "ebbflow_remote_write_sender_age_seconds"}  # fmt: skip
        assert ages == {"unnamed", "n2", "invalid"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not math.isnan(SENT[0].value)


def test_fields_in_another_order_or_with_long_strings_read_the_same() -> None:
    """The fast paths (a label and a sample as encoders write them) and the general path
    agree: a label with its value first, a 200-byte name, a sample with its timestamp
    first and a negative one are read as they mean."""
    long = "n" * 200

    def field(number: int, wire: int, payload: bytes) -> bytes:
        key = bytes([number << 3 | wire])
        return key + (varint(len(payload)) + payload if wire == 2 else payload)

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
            value >>= 7
            if not value:
                return bytes(out)

    labels = [
        field(1, 2, field(2, 2, b"app") + field(1, 2, b"job")),  # value before name
        field(1, 2, field(1, 2, b"__name__") + field(2, 2, long.encode())),
    ]
    stamp = varint((-5) & (1 << 64) - 1)
    sample = field(2, 2, b"\x10" + stamp + b"\x09" + struct.pack("<d", 2.5))  # stamp first
    raw = field(1, 2, b"".join(labels) + sample)
    (series,) = decode(bytes(cramjam.snappy.compress_raw(raw)), 1 << 20, 10)
    assert series.labels == (("job", "app"), ("__name__", long))
    assert series.samples == ((2.5, -5),)
