"""Beyond one host, measured: what a decider ingests by remote write, and how fast the
Swarm lease changes hands.

    .venv/bin/python benchmarks/cluster.py [--requests 50] [--series 2000] [--handovers 5]
    sudo .venv/bin/python benchmarks/cluster.py --lab      # also the lease, on the lab

1. Ingest, one process, side by side, median of 5 rounds: decoding the remote-write
   bodies alone (snappy + protobuf, `collector/remote_write/decode.py`), the receiver's
   whole path over HTTP on loopback (aiohttp, decode, series kept, one batch on the bus),
   and that path with the rule engine taking every batch (as a decider does). Bodies of
   `--series` series each, as Prometheus sends at most 2,000 per request.
2. With `--lab` (root; tests/lab.py brings the three-node Swarm up and down, or uses the
   one up): the Swarm lease's hand-over between deciders on n2 and n3, `--handovers`
   times each: after the holder crashes (stops renewing, releases nothing) and after a
   clean stop (it releases the lease), at ttl 6 s and at the default ttl.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # tests.lab; ebbflow itself as installed

from ebbflow.bus import Bus  # noqa: E402
from ebbflow.collector.remote_write import RemoteWriteConfig, RemoteWriteInput  # noqa: E402
from ebbflow.collector.remote_write.decode import decode  # noqa: E402
from ebbflow.exporters.remote_write.protobuf import compressed_write_request  # noqa: E402
from ebbflow.model import Sample, SampleBatch  # noqa: E402


async def poll(predicate: Callable[[], bool], step: float = 0.02) -> None:
    """Until it holds: what is watched here is state (a deadline, a queue), not an event."""
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(step)


def bodies(requests: int, series: int) -> list[bytes]:
    """Container series as an agent writes them: name, id, image, a few labels."""
    out = []
    for r in range(requests):
        samples = [
            Sample(
                "container_cpu_usage_seconds_total",
                float(r * series + i),
                (("cpu", "total"), ("id", f"/docker/{i:064x}"), ("image", "busybox"),
                 ("name", f"web-{i}"), ("node", f"n{i % 3 + 1}")),
                1_800_000_000.0 + r,
            )
            for i in range(series)
        ]  # fmt: skip
        out.append(compressed_write_request(samples))
    return out


def decode_alone(payloads: list[bytes]) -> float:
    began = time.perf_counter()
    for body in payloads:
        decode(body, 64 * 1024 * 1024, 50_000)
    return time.perf_counter() - began


async def over_http(payloads: list[bytes], with_rules: bool) -> float:
    bus = Bus()
    receiver = RemoteWriteInput(bus, RemoteWriteConfig(listen="127.0.0.1:0"))
    taken = bus.subscribe("decider", SampleBatch, capacity=100_000)
    engine_like = 0

    async def consume() -> None:
        nonlocal engine_like
        async for batch in taken:
            assert isinstance(batch, SampleBatch)
            for sample in batch.samples:  # what the rule engine does first: route by name
                engine_like += bool(sample.label("name"))

    async with asyncio.TaskGroup() as group:
        server = group.create_task(receiver.run())
        consumer = group.create_task(consume()) if with_rules else None
        await poll(lambda: receiver.bound is not None)
        url = f"http://127.0.0.1:{receiver.bound[1]}/api/v1/write"
        headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
        async with aiohttp.ClientSession() as session:
            began = time.perf_counter()
            for body in payloads:
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 204, response.status
            if consumer is not None:
                await poll(lambda: not taken.stats().depth, 0)
            took = time.perf_counter() - began
        server.cancel()
        if consumer is not None:
            consumer.cancel()
    return took


def ingest(requests: int, series: int, rounds: int = 5) -> None:
    payloads = bodies(requests, series)
    total = requests * series
    figures: dict[str, list[float]] = {"decode alone": [], "receiver": [], "receiver + routing": []}
    for _ in range(rounds):  # interleaved, so noise hits each alike
        figures["decode alone"].append(total / decode_alone(payloads))
        figures["receiver"].append(total / asyncio.run(over_http(payloads, False)))
        figures["receiver + routing"].append(total / asyncio.run(over_http(payloads, True)))
    base = statistics.median(figures["decode alone"])
    print(f"ingest: {requests} bodies × {series} series, median of {rounds}")
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"  {name:<20} {median:>12,.0f} samples/s  (×{median / base:.2f} of decode)")


async def handover(ttl: float, crash: bool) -> float:
    from ebbflow.config import LeaseConfig, ScopeConfig
    from ebbflow.docker_api import DockerHandle
    from ebbflow.lease_swarm import SwarmLease
    from tests import lab

    config = LeaseConfig(backend="swarm", name=f"bench-{os.getpid()}", ttl=ttl)
    handles = [DockerHandle(lab.node(n).host, timeout=3.0, node=n) for n in ("n2", "n3")]
    leases = [SwarmLease(h, ScopeConfig(), config) for h in handles]
    tasks = {lease: asyncio.create_task(lease.run()) for lease in leases}
    try:
        await poll(lambda: any(lease.may_act() for lease in leases))
        (holder,) = [lease for lease in leases if lease.may_act()]
        (other,) = [lease for lease in leases if lease is not holder]
        if crash:
            holder._release = _nothing  # type: ignore[method-assign]  # a crash releases nothing
        began = time.monotonic()
        tasks[holder].cancel()
        await poll(other.may_act)
        return time.monotonic() - began
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for handle in handles:
            await handle.close()
        lab.node("n1").docker("config", "rm", leases[0].object, check=False)


async def _nothing() -> None:
    return None


def lease_handovers(count: int) -> None:
    from ebbflow.config import LeaseConfig
    from tests import lab

    with lab.running():
        for ttl in (6.0, LeaseConfig().ttl):
            for crash in (True, False):
                runs = [asyncio.run(handover(ttl, crash)) for _ in range(count)]
                what = "crash (no release)" if crash else "clean stop (released)"
                print(f"  ttl {ttl:>4g} s, {what:<22} median {statistics.median(runs):5.1f} s,"
                      f" max {max(runs):5.1f} s over {count}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--handovers", type=int, default=5)
    parser.add_argument("--lab", action="store_true")
    args = parser.parse_args()
    ingest(args.requests, args.series)
    if args.lab:
        print("Swarm lease hand-over (deciders on n2 and n3)")
        with contextlib.suppress(KeyboardInterrupt):
            lease_handovers(args.handovers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
