"""From a sample on an agent's node to a decider's rules: how long it travels.

    .venv/bin/python benchmarks/latency.py [--samples 200] [--interval 0.5] [--flush 0.2]
    sudo .venv/bin/python benchmarks/latency.py --lab    # node 3's agent, node 1's decider

An application pushes one line-protocol datagram at a time to an agent (`ebbflow run
--role agent`, a process of its own, UDP in), which publishes it through the Kafka output
(to librdkafka's mock cluster) or the remote-write output. A decider's input in this
process (the Kafka input in a consumer group, or the remote-write receiver) puts it on
the bus. Measured: from the send to the moment the batch holding it is on the decider's
bus, where the rule engine evaluates it at once (a decision follows on that batch when
the policy's window is full). Both paths interleaved, `--samples` each, median and p99.

The agent publishes what it collected every `--interval` (its `--interval`) and an
output sends at most every `--flush` seconds: the two set the floor.

With `--lab` (root; tests/lab.py brings the three-node lab up and down, or uses the one
up), the decider side runs in node 1's network namespace and the agent in node 3's: the
sample crosses the lab's bridge, as between two hosts. The application's datagrams come
from node 1 to the agent's address on node 3 (one more bridge hop, tens of microseconds).
The Kafka mock listens on node 1's loopback; tests/tcp_relay.py carries node 3's
connections to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # tests.kafka_mock; ebbflow itself as installed

from ebbflow.bus import Bus, Subscription  # noqa: E402
from ebbflow.collector.kafka import KafkaInput, KafkaInputConfig  # noqa: E402
from ebbflow.collector.remote_write import RemoteWriteConfig, RemoteWriteInput  # noqa: E402
from ebbflow.model import SampleBatch  # noqa: E402
from ebbflow.partitions import PartitionOwnership  # noqa: E402
from tests.kafka_mock import MockCluster  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Where:
    """Where the agent runs and how the two sides reach each other: one machine's
    loopback, or the lab's node 3 (agent) and node 1 (this process, the decider)."""

    agent_prefix: tuple[str, ...] = ()  # nsenter into the agent's namespace
    agent_host: str = "127.0.0.1"  # the agent's UDP address, as the application sends to it
    decider_host: str = "127.0.0.1"  # the remote-write receiver's, as the agent sends to it

    @contextlib.contextmanager
    def kafka(self, bootstrap: str) -> Iterator[None]:
        """The mock broker at `bootstrap` (this namespace's loopback), reachable at the
        same address from the agent's namespace."""
        if not self.agent_prefix:
            yield
            return
        port = bootstrap.rpartition(":")[2]
        relay = [sys.executable, str(ROOT / "tests" / "tcp_relay.py")]
        procs = [
            subprocess.Popen([*relay, f"{self.decider_host}:{port}", bootstrap]),
            subprocess.Popen(
                [*self.agent_prefix, *relay, bootstrap, f"{self.decider_host}:{port}"]
            ),
        ]
        try:
            yield
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


def agent(workdir: Path, config: str, interval: float, where: Where) -> subprocess.Popen[bytes]:
    path = workdir / "agent.yaml"
    path.write_text(config)
    return subprocess.Popen(
        [*where.agent_prefix, sys.executable, "-m", "ebbflow", "run", "--role", "agent",
         "--config", str(path),
         "--state", str(workdir / "unused.db"), "--listen", f"127.0.0.1:{free_port()}",
         "--interval", str(interval)],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "EBBFLOW_LOG_LEVEL": "WARNING"},
    )  # fmt: skip


WARM_UP = 20  # the agent starting, the group settling: not measured


async def arrived(arrivals: Subscription, seq: int) -> bool:
    event = await arrivals.get()
    return isinstance(event, SampleBatch) and any(
        s.name == "bench_seq" and s.value == seq for s in event.samples
    )


async def measure(bus: Bus, udp: tuple[str, int], count: int, tag: str) -> list[float]:
    """Seconds from each send to its arrival on `bus` (one sample in flight at a time)."""
    arrivals = bus.subscribe("bench", SampleBatch, capacity=10_000)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    delays: list[float] = []
    try:
        for seq in range(1, WARM_UP + count + 1):
            line = f"bench,run={tag},service=bench/web seq={seq}i".encode()
            sent = time.perf_counter()
            while True:  # warming up (the agent starting), sent again until it arrives
                sender.sendto(line, udp)
                try:
                    async with asyncio.timeout(1.0 if seq <= WARM_UP else 30.0):
                        while not await arrived(arrivals, seq):
                            pass
                    break
                except TimeoutError:
                    if seq > WARM_UP:
                        raise
            if seq > WARM_UP:
                delays.append(time.perf_counter() - sent)
    finally:
        sender.close()
    return delays


async def via_kafka(
    workdir: Path, count: int, interval: float, flush: float, where: Where
) -> list[float]:
    with MockCluster() as cluster, where.kafka(cluster.bootstrap):
        topic = f"lat-{uuid.uuid4().hex[:8]}"
        cluster.create_topic(topic, 6)
        udp = free_port()
        proc = agent(workdir, f"inputs: {{udp: {{listen: '{where.agent_host}:{udp}'}}}}\n"
                     f"outputs: {{kafka: {{bootstrap_servers: '{cluster.bootstrap}', "
                     f"topic: {topic}, flush_interval: {flush}}}}}\n", interval,
                     where)  # fmt: skip
        bus = Bus()
        config = KafkaInputConfig(bootstrap_servers=(cluster.bootstrap,), topic=topic,
                                  group_id=f"lat-{uuid.uuid4().hex[:8]}")  # fmt: skip
        source = KafkaInput(bus, config, time.time, PartitionOwnership("", ""))
        task = asyncio.create_task(source.run())
        try:
            while not source.ownership.owned:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            return await measure(bus, (where.agent_host, udp), count, "kafka")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            proc.terminate()
            proc.wait(20)


async def via_remote_write(
    workdir: Path, count: int, interval: float, flush: float, where: Where
) -> list[float]:
    port, udp = free_port(), free_port()
    bus = Bus()
    listen = f"{where.decider_host}:{port}"
    source = RemoteWriteInput(bus, RemoteWriteConfig(listen=listen), time.time)
    task = asyncio.create_task(source.run())
    proc = agent(workdir, f"inputs: {{udp: {{listen: '{where.agent_host}:{udp}'}}}}\n"
                 f"outputs: {{remote_write: {{url: 'http://{listen}/api/v1/write', "
                 f"flush_interval: {flush}}}}}\n", interval, where)  # fmt: skip
    try:
        return await measure(bus, (where.agent_host, udp), count, "rw")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        proc.terminate()
        proc.wait(20)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--flush", type=float, default=0.2)
    parser.add_argument("--lab", action="store_true", help="agent on node 3, decider on node 1")
    args = parser.parse_args()
    where = Where()
    if args.lab:
        from tests import lab

        if os.environ.get("EBBFLOW_BENCH_NODE") != "n1":  # bring the lab up; run in n1
            with lab.running():
                return subprocess.run(
                    ["nsenter", f"--net={lab.node('n1').netns}", sys.executable, *sys.argv],
                    env={**os.environ, "EBBFLOW_BENCH_NODE": "n1"},
                ).returncode
        n3 = lab.node("n3")
        where = Where(("nsenter", f"--net={n3.netns}"), n3.address, lab.node("n1").address)
    results: dict[str, list[float]] = {"kafka": [], "remote write": []}
    with tempfile.TemporaryDirectory() as tmp:
        half = args.samples // 2
        for round_ in range(2):  # interleaved: each path twice, half the samples each time
            for name, path in (("kafka", via_kafka), ("remote write", via_remote_write)):
                workdir = Path(tmp) / f"{name.replace(' ', '-')}-{round_}"
                workdir.mkdir()
                results[name] += asyncio.run(path(workdir, half, args.interval, args.flush, where))
    print(f"{'agent on n3, decider on n1 (the lab)' if args.lab else 'one machine'}: "
          f"agent --interval {args.interval:g}, output flush_interval {args.flush:g}; "
          f"{len(results['kafka'])} samples per path")  # fmt: skip
    print("| path | median | p99 | max |")
    print("|---|---|---|---|")
    for name, delays in results.items():
        print(f"| {name} | {statistics.median(delays) * 1000:.0f} ms | "
              f"{p99(delays) * 1000:.0f} ms | {max(delays) * 1000:.0f} ms |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
