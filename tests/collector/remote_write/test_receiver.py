"""The remote-write receiver: what ebbflow's own remote-write output sends is read back
exactly; a hostile body is a named 400 or 413, never a hang; every bound holds."""

from __future__ import annotations

import asyncio
import math
import struct
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebbflow.app import build_context
from ebbflow.bus import Bus
from ebbflow.collector.remote_write import RemoteWriteConfig, RemoteWriteInput
from ebbflow.collector.remote_write import plugin as receiver_plugin
from ebbflow.collector.remote_write.decode import BadRequestError, decode
from ebbflow.config import AppConfig
from ebbflow.exporters.remote_write import plugin as output_plugin
from ebbflow.exporters.remote_write.protobuf import write_request
from ebbflow.model import Sample, SampleBatch, labels_of
from tests.certs import make_ca, sign
from tests.conftest import bound_address


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


@pytest.mark.integration
async def test_an_agent_writes_to_a_decider_over_tls_with_basic_auth(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As Prometheus's own receiver takes a web config: the decider's /api/v1/write over
    TLS with a user (real openssl certificates, a real htpasswd hash); the agent's output
    trusts the decider's CA (`tls_config.ca_file`) and gives the user. A wrong password is
    a 401 counted on the decider, and nothing of it reaches the rules; an output that does
    not trust the CA never sends."""
    make_ca(tmp_path / "ca")
    sign(tmp_path / "ca", tmp_path, "decider",
         "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")  # fmt: skip
    made = subprocess.run(["htpasswd", "-nbBC", "10", "", "s3cret"], capture_output=True,
                          text=True, check=True, timeout=30)  # fmt: skip
    hashed = made.stdout.strip().lstrip(":")
    web = tmp_path / "web-config.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: decider-cert.pem\n  key_file: decider-key.pem\n"
        f"basic_auth_users:\n  agent: '{hashed}'\n"
    )
    decider = build_context(AppConfig())
    received = decider.bus.subscribe("rules", SampleBatch)
    receiver = receiver_plugin.build(
        decider, {"listen": "127.0.0.1:0", "web_config_file": str(web)}, "inputs.remote_write"
    )
    served = asyncio.create_task(receiver.run())
    try:
        url = f"https://127.0.0.1:{(await bound_address(receiver))[1]}/api/v1/write"

        async def write(name: str, password: str, tls: dict[str, object] | None) -> Any:
            """One agent's output, given 3 s to send the samples once."""
            agent = build_context(AppConfig.model_validate({"state": str(tmp_path / name)}))
            options = {"url": url, "username": "agent", "password": password,
                       "flush_interval": 0.05, "backoff_initial": 0.2}  # fmt: skip
            if tls is not None:
                options["tls_config"] = tls
            output = output_plugin.build(agent, options, f"outputs.{name}")
            task = asyncio.create_task(output.run())
            agent.bus.publish(SampleBatch("t", 1.0, tuple(SENT)))
            try:
                for _ in range(60):
                    if output.sent:
                        break
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            return output

        trusted = {"ca_file": str(tmp_path / "ca" / "ca.pem")}
        assert (await write("right", "s3cret", trusted)).sent == 3
        batch = received.get_nowait()
        assert isinstance(batch, SampleBatch) and {s.name for s in batch.samples} == {
            "queue_depth",
            "up",
        }
        wrong = await write("wrong", "guess", trusted)
        assert wrong.sent == 0 and wrong.retries >= 2 and "401" in wrong.last_error
        stranger = await write("stranger", "s3cret", None)  # trusts the system's CAs only
        assert stranger.sent == 0 and "CERTIFICATE_VERIFY_FAILED" in stranger.last_error
        assert received.get_nowait() is None  # nothing of the refused ones
        counted = {s.name: s.value for s in receiver.telemetry(0.0)
                   if s.label("server") == "remote_write"}  # fmt: skip
        # Each of the wrong one's attempts was refused (the last may be cut by its stop).
        assert counted["ebbflow_http_auth_rejected_total"] in (wrong.retries, wrong.retries + 1)
        assert counted["ebbflow_web_config_last_reload_successful"] == 1.0
        assert dict(receiver.requests) == {"ok": 1}
    finally:
        served.cancel()
        await asyncio.gather(served, return_exceptions=True)
