"""Collector cost at scale, on a real engine.

1. With N running containers (default 200): `ebbflow bench collect` — the containers
   input's cycle, a bare read of the same cgroup files, and Docker's stats API, side by
   side in one run, interleaved.
2. With M of them (default 100): `ebbflow run --interval 1` (containers input and the
   /metrics output) for a measured window; its CPU time from /proc/PID/stat and its
   resident memory from /proc/PID/status.

Run: .venv/bin/python benchmarks/collect.py [--containers 200] [--overhead-containers 100]
     [--window 60] [--cycles 20]   (needs a Docker engine and ebbflow/busybox:latest;
     scripts/test sets both up — or EBBFLOW_KEEP_ENGINE=1 scripts/test -k nothing)
Containers it starts carry `ebbflow.bench=<run id>` and are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IMAGE = os.environ.get("EBBFLOW_TEST_IMAGE", "ebbflow/busybox:latest")
RUN = uuid.uuid4().hex[:8]
TICKS = os.sysconf("SC_CLK_TCK")


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=300
    ).stdout.strip()


def start_containers(count: int) -> list[str]:
    def one(i: int) -> str:
        return docker(
            "run",
            "-d",
            "--network",
            "none",
            "--label",
            f"ebbflow.bench={RUN}",
            "--name",
            f"ebbbench-{RUN}-{i}",
            IMAGE,
            "sleep",
            "3600",
        )

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def remove(ids: list[str]) -> None:
    for i in range(0, len(ids), 50):
        subprocess.run(["docker", "rm", "-f", *ids[i : i + 50]], capture_output=True, timeout=300)


def ebbflow_bin() -> str:
    return str(Path(sys.executable).with_name("ebbflow"))


def bench_collect(cycles: int) -> dict[str, object]:
    out = subprocess.run(
        [ebbflow_bin(), "bench", "collect", "--cycles", str(cycles), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def overhead(window: float) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = Path(tempfile.mkdtemp(prefix="ebbbench-"))
    config = workdir / "ebbflow.yaml"
    config.write_text(
        # the containers input alone (inputs: merges with the defaults, so the others are
        # turned off by name)
        f"interval: 1\ninputs:\n  containers: {{}}\n  node: false\n  probes: false\n"
        f"  scrape: false\noutputs:\n  prometheus:\n"
        f"    listen: 127.0.0.1:{port}\nstate: {workdir}/state.db\n"
        # acts on nothing but this run's containers (the engine may hold others)
        f"scope:\n  labels:\n    ebbflow.bench: {RUN}\n"
    )
    proc = subprocess.Popen(
        [ebbflow_bin(), "run", "--config", str(config)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(10)  # start-up and the first discovery are not the steady state
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        peak = 0
        while time.monotonic() - t0 < window:
            time.sleep(1)
            peak = max(peak, rss_bytes(proc.pid))
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "window_s": t1 - t0,
        "cpu_percent_of_one_core": 100 * (cpu1 - cpu0) / (t1 - t0),
        "peak_rss_mb": peak / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--overhead-containers", type=int, default=100)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    already = len(docker("ps", "-q").split())
    ids: list[str] = []
    try:
        ids = start_containers(max(0, args.containers - already))
        scale = bench_collect(args.cycles)
        remove(ids[: max(0, args.containers - args.overhead_containers)])
        ids = ids[max(0, args.containers - args.overhead_containers) :]
        running = len(docker("ps", "-q").split())
        cost = overhead(args.window)
    finally:
        remove(ids)
    print(json.dumps({"scale": scale, "overhead": {"containers": running, **cost}}, indent=1))


if __name__ == "__main__":
    main()
