"""Samples written by the InfluxDB output are read back from a real VictoriaMetrics."""

import asyncio
import json
import time
import urllib.parse
import urllib.request

import pytest

from ebbflow.bus import Bus
from ebbflow.exporters.buffered import DeliveryOptions
from ebbflow.exporters.influxdb import InfluxConfig, InfluxOutput
from ebbflow.model import Sample, SampleBatch, labels_of

pytestmark = pytest.mark.integration


def export(url: str, match: str) -> list[dict]:
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).close()
    query = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=10) as resp:
        return [json.loads(line) for line in resp.read().decode().splitlines() if line]


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_written_samples_read_back(victoria_metrics: str, api: str) -> None:
    bus = Bus()
    config = InfluxConfig(url=victoria_metrics, api=api, database="ebbflow", bucket="ebbflow")
    out = InfluxOutput(
        bus, "influxdb", config, DeliveryOptions(batch_size=50, flush_interval=0.05), time.time
    )
    task = asyncio.create_task(out.run())
    now = time.time()
    name = f"ebbflow_test_{api}"
    for i in range(120):
        bus.publish(
            SampleBatch(
                "t",
                now,
                (
                    Sample(
                        name,
                        float(i),
                        labels_of({"name": "shop web", "series": str(i % 3)}),
                        now - 120 + i,
                    ),
                ),
            )
        )
    async with asyncio.timeout(20):
        while out.sent < 120:  # noqa: ASYNC110  (polling a counter is the point)
            await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    rows = await asyncio.to_thread(export, victoria_metrics, f"{name}_value")
    assert {row["metric"]["series"] for row in rows} == {"0", "1", "2"}
    assert all(row["metric"]["name"] == "shop web" for row in rows)  # escaped and back
    values = sorted(v for row in rows for v in row["values"])
    assert values == [float(i) for i in range(120)]  # every sample, none twice
    stamps = sorted(t for row in rows for t in row["timestamps"])
    assert abs(stamps[0] - (now - 120) * 1000) <= 1  # kept to the millisecond (VM truncates)
