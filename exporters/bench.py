"""`ebbflow bench pipeline`: samples per second through the bus and into each output's
serializer, and the `/metrics` text for 100,000 series, side by side in one run.

The samples look like the containers input's: cAdvisor names, five labels each (a 64-hex
id, name, image, compose project and service), 20 containers to a service. Every figure is
one core's: the serializers are plain single-threaded Python.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest

from ebbflow.bus import Bus
from ebbflow.model import Sample, SampleBatch, labels_of
from ebbflow.plugins import PluginContext

from .kafka import KafkaConfig, KafkaOutput
from .pipeline import DeliveryOptions
from .prometheus.exposition import Exposition
from .prometheus.server import PrometheusOutput
from .prometheus.snapshot import Snapshot
from .remote_write.protobuf import compressed_write_request
from .serializers import line_protocol

METRICS = (
    ("container_cpu_usage_seconds_total", "counter"),
    ("container_cpu_user_seconds_total", "counter"),
    ("container_cpu_system_seconds_total", "counter"),
    ("container_memory_usage_bytes", "gauge"),
    ("container_memory_working_set_bytes", "gauge"),
    ("container_memory_rss", "gauge"),
    ("container_memory_cache", "gauge"),
    ("container_fs_reads_bytes_total", "counter"),
    ("container_fs_writes_bytes_total", "counter"),
    ("container_network_receive_bytes_total", "counter"),
)


def container_samples(containers: int, now: float) -> list[Sample]:
    samples = []
    for c in range(containers):
        labels = labels_of(
            {
                "id": f"/docker/{c:064x}",
                "name": f"shop-svc{c // 20}-{c % 20 + 1}",
                "image": "registry.example/shop/app:1.4.2",
                "container_label_com_docker_compose_project": "shop",
                "container_label_com_docker_compose_service": f"svc{c // 20}",
            }
        )
        for i, (name, kind) in enumerate(METRICS):
            samples.append(Sample(name, c * 1.5 + i, labels, now, kind, "help"))  # type: ignore[arg-type]
    return samples


def _rate(work: Callable[[], object], samples: int, runs: int) -> dict[str, float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {"samples_per_s": samples / median, "median_ms": median * 1000, "runs": runs}


class _Reference:
    """The snapshot as prometheus-client's collector, rendered by its generate_latest."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for series in self.snapshot.sources():
            for s in series.values():
                family = families.get(s.name)
                if family is None:
                    base = s.name.removesuffix("_total") if s.kind == "counter" else s.name
                    family = families[s.name] = Metric(base, s.help, s.kind)
                family.add_sample(s.name, dict(s.labels), s.value)
        yield from families.values()


async def bench_pipeline(ctx: PluginContext, cycles: int) -> dict[str, Any]:
    runs = max(3, cycles)
    samples = container_samples(5000, time.time())  # 50,000 samples
    count = len(samples)

    bus = Bus()  # it moves references: batches of 500 samples here
    subscription = bus.subscribe("bench", SampleBatch, capacity=1_000_000)
    batches = [
        SampleBatch("containers", 0.0, tuple(samples[i : i + 500])) for i in range(0, count, 500)
    ]

    def through_bus() -> None:
        for batch in batches:
            bus.publish(batch)
        while subscription.get_nowait() is not None:
            pass

    def kafka(fmt: Literal["influx", "json"]) -> Callable[[], object]:
        out = KafkaOutput(
            Bus(),
            "kafka",
            KafkaConfig(format=fmt),
            DeliveryOptions(),
            time.time,
        )
        return lambda: out.messages(samples)

    results: dict[str, Any] = {
        "bus": _rate(through_bus, count, runs),
        "influxdb_line_protocol": _rate(lambda: line_protocol(samples).encode(), count, runs),
        "kafka_line_protocol": _rate(kafka("influx"), count, runs),
        "kafka_json": _rate(kafka("json"), count, runs),
        "remote_write": _rate(lambda: compressed_write_request(samples), count, runs),
    }

    series = container_samples(10_000, time.time())  # 100,000 series
    snapshot = Snapshot()
    snapshot.update(SampleBatch("containers", 0.0, tuple(series)))
    exposition = Exposition()
    exposition.render(snapshot.sources())  # the steady state: label sets already formatted
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reference(snapshot))
    results["metrics_100k_series"] = _rate(
        lambda: exposition.render(snapshot.sources()), len(series), runs
    )
    results["metrics_100k_series_prometheus_client"] = _rate(
        lambda: generate_latest(registry), len(series), min(runs, 3)
    )
    results |= await _served(series, runs)
    return results


async def _served(series: list[Sample], runs: int) -> dict[str, Any]:
    """GET /metrics over loopback HTTP from a running output, as Prometheus would (which
    asks for gzip), and without compression."""
    bus = Bus()
    output = PrometheusOutput(bus, "127.0.0.1:0")
    task = asyncio.create_task(output.run())
    try:
        async with asyncio.timeout(10):
            while output.bound is None:  # noqa: ASYNC110  (waiting for the socket)
                await asyncio.sleep(0.01)
        bus.publish(SampleBatch("containers", 0.0, tuple(series)))
        async with asyncio.timeout(10):
            while output.snapshot.series_count() < len(series):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        url = f"http://127.0.0.1:{output.bound[1]}/metrics"
        figures: dict[str, Any] = {}
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            for name, encoding in (("served_gzip", "gzip"), ("served_plain", "identity")):
                seconds = []
                size = 0
                for _ in range(runs + 1):  # the first formats the label sets: not counted
                    start = time.perf_counter()
                    async with session.get(url, headers={"Accept-Encoding": encoding}) as resp:
                        size = len(await resp.read())
                    seconds.append(time.perf_counter() - start)
                median = statistics.median(seconds[1:])
                figures[f"metrics_100k_{name}"] = {
                    "median_ms": median * 1000,
                    "max_ms": max(seconds[1:]) * 1000,
                    "bytes": size,
                    "runs": runs,
                }
        return figures
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
