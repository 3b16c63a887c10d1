"""Prometheus remote write: the protobuf by hand, and samples read back from a real
VictoriaMetrics (which takes remote write on /api/v1/write)."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import urllib.parse
import urllib.request

import cramjam
import pytest

from ebbflow.bus import Bus
from ebbflow.exporters.pipeline import DeliveryOptions
from ebbflow.exporters.remote_write import RemoteWriteConfig, RemoteWriteOutput
from ebbflow.exporters.remote_write.protobuf import compressed_write_request, write_request
from ebbflow.model import Sample, SampleBatch, labels_of


def test_write_request_bytes() -> None:
    body = write_request([Sample("a", 1.0, labels_of({"z": "b", "empty": ""}), 0.002)])
    label_name = b"\x0a\x0d" + b"\x0a\x08__name__" + b"\x12\x01a"
    label_z = b"\x0a\x06" + b"\x0a\x01z" + b"\x12\x01b"  # the empty label is left out
    sample = b"\x12\x0b" + b"\x09" + struct.pack("<d", 1.0) + b"\x10\x02"
    series = label_name + label_z + sample
    assert body == b"\x0a" + bytes([len(series)]) + series


def test_series_are_grouped_sorted_and_snappy_compressed() -> None:
    samples = [
        Sample("m", 2.0, labels_of({"x": "1"}), 2.0),
        Sample("m", 1.0, labels_of({"x": "1"}), 1.0),
        Sample("m", 3.0, labels_of({"x": "2"}), 1.0),
    ]
    raw = write_request(samples)
    assert raw.count(b"\x0a\x08__name__") == 2  # two series
    first = raw.index(struct.pack("<d", 1.0))
    assert first < raw.index(struct.pack("<d", 2.0))  # time order within a series
    assert bytes(cramjam.snappy.decompress_raw(compressed_write_request(samples))) == raw


def export(url: str, match: str) -> list[dict]:
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).close()
    query = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


@pytest.mark.integration
async def test_written_samples_read_back(victoria_metrics: str) -> None:
    bus = Bus()
    out = RemoteWriteOutput(
        bus,
        "remote_write",
        RemoteWriteConfig(url=f"{victoria_metrics}/api/v1/write", bearer_token="t"),
        DeliveryOptions(batch_size=50, flush_interval=0.05),
        time.time,
    )
    task = asyncio.create_task(out.run())
    now = round(time.time())
    for i in range(120):
        labels = labels_of({"name": "shop web", "series": str(i % 3)})
        bus.publish(
            SampleBatch("t", now, (Sample("ebbflow_rw_test", float(i), labels, now - 120 + i),))
        )
    try:
        async with asyncio.timeout(20):
            while out.sent < 120:  # noqa: ASYNC110  (polling a counter is the point)
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    rows = await asyncio.to_thread(export, victoria_metrics, "ebbflow_rw_test")
    assert {row["metric"]["series"] for row in rows} == {"0", "1", "2"}
    assert all(row["metric"]["name"] == "shop web" for row in rows)
    assert sorted(v for row in rows for v in row["values"]) == [float(i) for i in range(120)]
    stamps = sorted(t for row in rows for t in row["timestamps"])
    assert stamps[0] == (now - 120) * 1000 and stamps[-1] == (now - 1) * 1000
