"""UDP input throughput: lines/s parsed, and lines/s `ebbflow run` sustains with zero
kernel drops.

    .venv/bin/python benchmarks/udp.py [--seconds 10] [--rates 25000,50000,100000,150000]

1. Parsers, one core, in one process, interleaved, median of 7: this parser
   (`parse_lines`), the one it replaced (read from git at --old, the last commit before
   it), and PyPI's `line-protocol-parser` (C) when installed; then the UDP input's whole
   per-datagram path (`UdpInput.parse_datagram`: parse, labels, names, series).
2. `ebbflow run` with only the UDP input and /metrics, on loopback: a sender paces
   Telegraf-like lines (3 fields, 20 lines a datagram) at each rate for --seconds, then
   the run's counters say what arrived, what the kernel dropped and the CPU it took. Each
   rate runs once, a bounded loop that stops by itself. "Lines per CPU second" is what
   arrived over the CPU time ebbflow spent meanwhile (sending and draining): per core.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
LINES_PER_DATAGRAM = 20


def workload(count: int) -> list[str]:
    return [
        f"cpu,host=web-{i % 50},cpu=cpu{i % 4} usage_user={i % 100}.5,usage_system=0.5,"
        f"usage_idle=98 1700000000{i % 10**9:09d}"
        for i in range(count)
    ]


def old_parser(commit: str) -> ModuleType | None:
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:collector/udp/parsers.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "old_parsers.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_parsers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def parsers(old_commit: str) -> dict[str, float]:
    from ebbflow.bus import Bus
    from ebbflow.collector.udp import UdpConfig, UdpInput
    from ebbflow.collector.udp.lineprotocol import parse_lines

    lines = workload(20_000)
    text = "\n".join(lines)
    udp = UdpInput(Bus(), UdpConfig(max_series=100_000), time.time)
    datagrams = [
        "\n".join(lines[i : i + LINES_PER_DATAGRAM]).encode()
        for i in range(0, len(lines), LINES_PER_DATAGRAM)
    ]
    runs: dict[str, Callable[[], object]] = {
        "parse_lines (this parser)": lambda: list(parse_lines(text)),
        "UdpInput.parse_datagram (whole path)": lambda: [
            udp.parse_datagram(d, "bench") for d in datagrams
        ],
    }
    old = old_parser(old_commit)
    if old is not None:
        runs["previous parser"] = lambda: [old.parse_line_protocol(line) for line in lines]
    try:
        from line_protocol_parser import parse_line  # type: ignore[import-not-found]

        runs["line-protocol-parser (PyPI, C)"] = lambda: [parse_line(line) for line in lines]
    except ImportError:
        pass
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(7):  # interleaved: noise hits every parser alike
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - started)
    return {name: len(lines) / statistics.median(t) for name, t in timings.items()}


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sustained(rates: list[int], seconds: float) -> list[dict[str, float]]:
    work = Path(tempfile.mkdtemp())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        http_port = probe.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        udp_port = probe.getsockname()[1]
    off = dict.fromkeys(("containers", "node", "probes", "scrape"), False)
    config = work / "ebbflow.yaml"
    udp = {"listen": f"127.0.0.1:{udp_port}", "max_series": 100_000}
    config.write_text(json.dumps({"inputs": {**off, "udp": udp}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ebbflow", "run", "--config", str(config), "--listen",
         f"127.0.0.1:{http_port}", "--state", str(work / "state.db"), "--scope-label",
         "ebbflow.bench=udp"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "EBBFLOW_LEASE__ENABLED": "false"},
    )  # fmt: skip
    results = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                metric(http_port, "ebbflow_udp_datagrams_total")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("ebbflow run did not start") from None
                time.sleep(0.2)
        lines = workload(100_000)
        datagrams = [
            "\n".join(lines[i : i + LINES_PER_DATAGRAM]).encode()
            for i in range(0, len(lines), LINES_PER_DATAGRAM)
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for rate in rates:
                before = {
                    n: metric(http_port, n)
                    for n in ("ebbflow_udp_samples_total", "ebbflow_udp_kernel_drops_total")
                }
                cpu_before = cpu_seconds(proc.pid)
                per_tick = rate / LINES_PER_DATAGRAM / 100  # datagrams per 10 ms
                sent = 0
                started = time.monotonic()
                tick = 0
                owed = 0.0
                while (now := time.monotonic()) < started + seconds:  # stops by itself
                    owed += per_tick
                    while owed >= 1:
                        sender.sendto(datagrams[sent % len(datagrams)], ("127.0.0.1", udp_port))
                        sent += 1
                        owed -= 1
                    tick += 1
                    time.sleep(max(0.0, started + tick * 0.01 - time.monotonic()))
                elapsed = now - started
                time.sleep(2)  # the run drains its buffer
                samples = metric(http_port, "ebbflow_udp_samples_total")
                drops = metric(http_port, "ebbflow_udp_kernel_drops_total")
                cpu = cpu_seconds(proc.pid) - cpu_before
                results.append(
                    {
                        "offered_lines_per_s": sent * LINES_PER_DATAGRAM / elapsed,
                        "arrived_lines": (samples - before["ebbflow_udp_samples_total"]) / 3,
                        "sent_lines": sent * LINES_PER_DATAGRAM,
                        "kernel_drops": drops - before["ebbflow_udp_kernel_drops_total"],
                        "cpu_seconds": cpu,
                    }
                )
    finally:
        proc.terminate()
        proc.wait(20)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rates", default="25000,50000,100000,150000")
    parser.add_argument("--old", default="2c15bfe", help="the commit with the old parser")
    args = parser.parse_args()
    print("| parser (one core, median of 7) | lines/s |\n|---|---:|")
    for name, rate in parsers(args.old).items():
        print(f"| {name} | {rate:,.0f} |")
    print()
    print("| offered lines/s | sent | arrived | kernel drops | ebbflow CPU s | lines per CPU s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in sustained([int(r) for r in args.rates.split(",")], args.seconds):
        print(
            f"| {row['offered_lines_per_s']:,.0f} | {row['sent_lines']:,.0f} | "
            f"{row['arrived_lines']:,.0f} | {row['kernel_drops']:,.0f} | "
            f"{row['cpu_seconds']:.2f} | {row['arrived_lines'] / row['cpu_seconds']:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
