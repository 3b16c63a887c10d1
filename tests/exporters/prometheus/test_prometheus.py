import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from ebbflow.bus import Bus
from ebbflow.exporters.prometheus import PrometheusOutput
from ebbflow.model import Sample, SampleBatch, labels_of

from ...conftest import bound_address


def batch(source: str, names: list[str]) -> SampleBatch:
    cpu = tuple(
        Sample("container_cpu_usage_seconds_total", 1.5, labels_of({"name": n}), 1.0, "counter")
        for n in names
    )
    memory = Sample("container_memory_usage_bytes", 1024, labels_of({"name": names[0]}), 1.0)
    return SampleBatch(source, 1.0, (*cpu, memory))


async def scrape(port: int) -> dict[str, dict[str, float]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=5)
        ) as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[s.labels.get("name", "")] = s.value
    return out


async def test_serves_the_latest_batch_per_source_over_http() -> None:
    bus = Bus()
    output = PrometheusOutput(bus, "127.0.0.1:0")
    task = asyncio.create_task(output.run())
    port = (await bound_address(output))[1]
    bus.publish(batch("containers", ["a", "b"]))
    bus.publish(SampleBatch("ebbflow", 1.0, (Sample("ebbflow_up", 1.0),)))
    await asyncio.sleep(0.05)
    first = await scrape(port)
    assert first["container_cpu_usage_seconds_total"] == {"a": 1.5, "b": 1.5}
    assert first["ebbflow_up"] == {"": 1.0}
    bus.publish(batch("containers", ["b"]))  # a is gone: its series must go too
    await asyncio.sleep(0.05)
    second = await scrape(port)
    assert second["container_cpu_usage_seconds_total"] == {"b": 1.5}
    assert second["ebbflow_up"] == {"": 1.0}  # other sources untouched
    task.cancel()
