"""Samples written by the InfluxDB output are read back from a real VictoriaMetrics."""

import asyncio
import json
import logging
import time
import urllib.parse
import urllib.request

import pytest

from ebbflow.bus import Bus
from ebbflow.exporters.influxdb import InfluxConfig, InfluxOutput
from ebbflow.exporters.pipeline import DeliveryOptions
from ebbflow.model import Sample, SampleBatch, labels_of
from tests.conftest import Influxd

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


async def write_and_wait(out: InfluxOutput, bus: Bus, name: str, count: int) -> None:
    task = asyncio.create_task(out.run())
    now = time.time()
    for i in range(count):
        labels = labels_of({"name": "shop web", "series": str(i % 3)})
        bus.publish(SampleBatch("t", now, (Sample(name, float(i), labels, now - count + i),)))
    try:
        async with asyncio.timeout(20):
            while out.sent < count:  # noqa: ASYNC110  (polling a counter is the point)
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def v1_output(bus: Bus, influxd: Influxd, **config: str) -> InfluxOutput:
    settings = {
        "database": "ebbflow",
        "username": influxd.username,
        "password": influxd.password,
    } | config
    return InfluxOutput(
        bus,
        "influxdb",
        InfluxConfig(url=influxd.url, api="v1", **settings),
        DeliveryOptions(batch_size=50, flush_interval=0.05, backoff_initial=0.05),
        time.time,
    )


async def test_influxd_reads_back_what_was_written(influxd: Influxd) -> None:
    bus = Bus()
    await write_and_wait(v1_output(bus, influxd), bus, "ebbflow_influxd_test", 120)
    answer = influxd.query('SELECT value, "name", "series" FROM ebbflow_influxd_test', db="ebbflow")
    rows = answer["results"][0]["series"][0]["values"]
    assert sorted(row[1] for row in rows) == [float(i) for i in range(120)]
    assert {row[2] for row in rows} == {"shop web"}
    assert {row[3] for row in rows} == {"0", "1", "2"}


@pytest.mark.parametrize(
    ("settings", "answer"),
    [
        ({"password": "wrong"}, '401: {"error":"authorization failed"}'),
        ({"database": "nope"}, '404: {"error":"database not found: \\"nope\\""}'),
    ],
)
async def test_refused_settings_are_a_clear_error_and_lose_nothing(
    influxd: Influxd, settings: dict[str, str], answer: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = Bus()
    out = v1_output(bus, influxd, **settings)
    task = asyncio.create_task(out.run())
    with caplog.at_level(logging.ERROR, "ebbflow.exporters"):
        bus.publish(SampleBatch("t", 0, (Sample("ebbflow_refused", 1.0, (), time.time()),)))
        async with asyncio.timeout(20):
            while out.retries < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert "output influxdb: the server refused its settings" in caplog.text
    assert f"{influxd.url}/write answered {answer}" in caplog.text
    assert out.sent == 0 and sum(out.dropped.values()) == 0  # kept, not dropped
