"""The cost of `ebbflow run` as containers grow: 100, 500 and 1,000 of them (issue 26).

For each size, side by side in one run:
- the containers input's whole cycle (every container read: `ebbflow bench collect`), the
  same files read bare from Python, and from C (`benchmarks/cfloor.c`: open/read/close
  each file, and pread on descriptors kept open: the floor);
- `ebbflow run --interval 1` (the containers input and /metrics), for each variant
  (this checkout, and `--before REV` installed beside it), windows interleaved: CPU of one
  core and peak RSS per window, then /metrics' size and time (plain and gzip);
- the cost per added container between the smallest and the largest size (the slope).
At the largest size: how long a new container takes to show on /metrics (median of 5),
and with `--profile` a py-spy profile of this checkout's `ebbflow run`.

Run: .venv/bin/python benchmarks/scale.py [--sizes 100,500,1000] [--windows 3]
     [--window 30] [--before REV] [--profile] [--reuse]
Needs a Docker engine with ebbflow/busybox:latest (scripts/test sets both up), gcc, and
for --profile py-spy (pip-installed into the venv on demand). The containers it starts
carry `ebbflow.bench=<run>` and are removed at the end; with --reuse, running containers
labelled `ebbflow.bench` from an earlier run are measured (and removed) too. Every
`ebbflow run` it starts is scoped to `ebbflow.bench=<run>`: it acts on nothing else.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IMAGE = os.environ.get("EBBFLOW_TEST_IMAGE", "ebbflow/busybox:latest")
RUN = uuid.uuid4().hex[:8]
TICKS = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
SETTLE = 60.0  # seconds after start before a window: past the back-off to idle intervals


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=600
    ).stdout.strip()


def bench_containers() -> list[str]:
    return docker("ps", "-q", "--filter", "label=ebbflow.bench").split()


def resize(count: int) -> None:
    """Exactly `count` running bench containers (started 4 at a time, or removed)."""
    have = bench_containers()
    if len(have) > count:
        extra = have[count:]
        for i in range(0, len(extra), 50):
            subprocess.run(["docker", "rm", "-f", *extra[i : i + 50]], capture_output=True,
                           timeout=600, check=False)  # fmt: skip
        return

    def one(i: int) -> None:
        docker("run", "-d", "--network", "none", "--label", f"ebbflow.bench={RUN}",
               "--name", f"ebbscale-{RUN}-{i}", IMAGE, "sleep", "86400")  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(len(have), count)))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Run:
    """One `ebbflow run --interval 1`: the containers input and /metrics."""

    def __init__(self, pythonpath: str | None, lease: str = "") -> None:
        self.port = free_port()
        self.started = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="ebbscale-"))
        config = self.workdir / "ebbflow.yaml"
        config.write_text(
            f"interval: 1\ninputs:\n  containers: {{}}\n  node: false\n  probes: false\n"
            f"  scrape: false\noutputs:\n  prometheus:\n    listen: 127.0.0.1:{self.port}\n"
            f"state: {self.workdir}/state.db\n"
            # acts on nothing but this run's containers (the engine may hold others)
            f"scope:\n  labels:\n    ebbflow.bench: {RUN}\n"
            # Each instance holds a lease of its own, as the one instance on a host would.
            # Sharing one, the first started led and the other stood by, polling the
            # engine for the lease each second: a cost only one of the two paid.
            f"lease:\n  name: {lease or 'bench'}\n"
        )
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "ebbflow", "run", "--config", str(config)],
            cwd=self.workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def metrics(self, gzipped: bool = False) -> tuple[bytes, float]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/metrics",
            headers={"Accept-Encoding": "gzip"} if gzipped else {},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return body, time.perf_counter() - started

    def cycle_ms(self) -> float:
        """`ebbflow_input_cycle_duration_seconds{input="containers"}`: its last cycle."""
        needle = b'ebbflow_input_cycle_duration_seconds{input="containers"} '
        body = self.metrics()[0]
        start = body.index(needle) + len(needle)
        return 1000 * float(body[start : body.index(b"\n", start)])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if b"container_last_seen{" in self.metrics()[0]:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("ebbflow run did not serve container series within 60 s")

    def wait_walked(self, containers: int) -> None:
        """Past start-up: every writable layer walked once (10 a cycle, but only among the
        containers a cycle reads, so the last ones wait for their idle turn). A window
        before that measured the walks: the first of three windows was 11.6 % of a core
        where the third was 7.0 %."""
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.metrics()[0].count(b"\ncontainer_fs_usage_bytes{") >= containers:
                return
            time.sleep(2)
        raise RuntimeError(f"not every writable layer of {containers} walked within 600 s")

    def window(self, seconds: float) -> dict[str, float]:
        cpu0, t0 = cpu_seconds(self.proc.pid), time.monotonic()
        peak = 0
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            peak = max(peak, rss_bytes(self.proc.pid))
        cpu1, t1 = cpu_seconds(self.proc.pid), time.monotonic()
        return {"cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0), "peak_rss_mb": peak / 1e6}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.workdir, ignore_errors=True)
        # what it may have left on the engine if its stop was cut short: its lease and
        # claim objects, named by its owner label (host:pid:nonce)
        mine = f"{socket.gethostname()}:{self.proc.pid}:"
        for label in ("ebbflow.claim.owner", "ebbflow.lease.owner"):
            listed = docker("ps", "-a", "--filter", f"label={label}",
                            "--format", f'{{{{.ID}}}} {{{{.Label "{label}"}}}}')  # fmt: skip
            ids = [i for i, _, owner in (line.partition(" ") for line in listed.splitlines())
                   if owner.startswith(mine)]  # fmt: skip
            if ids:
                docker("rm", "-f", *ids)


def floors(cfloor: Path, cycles: int) -> dict[str, float]:
    """The Python cycle and bare read (ebbflow bench collect), and the two C floors."""
    out = subprocess.run(
        [PYTHON, "-m", "ebbflow", "bench", "collect", "--cycles", str(cycles), "--json"],
        capture_output=True, text=True, timeout=1800, cwd=tempfile.gettempdir(),
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"ebbflow bench collect failed:\n{out.stderr[-3000:]}")
    collect = json.loads(out.stdout)
    listing = subprocess.run(
        [PYTHON, "-c", "import asyncio; from ebbflow.collector.containers.bench import "
         "local_cycle_files; print('\\n'.join(asyncio.run(local_cycle_files())))"],
        capture_output=True, text=True, check=True, timeout=600, cwd=tempfile.gettempdir(),
    ).stdout  # fmt: skip
    result = {
        "files": float(len(listing.split())),
        "cycle_ms": collect["collector"]["median_ms"],
        "python_bare_ms": collect["bare_read"]["median_ms"],
    }
    for mode in ("open", "pread"):
        times = subprocess.run(
            [str(cfloor), mode, str(cycles)], input=listing, capture_output=True, text=True,
            check=True, timeout=600,
        ).stdout.split()  # fmt: skip
        result[f"c_{mode}_ms"] = statistics.median(float(t) for t in times)
    return result


def overhead(
    variants: dict[str, str | None], windows: int, seconds: float, containers: int
) -> dict[str, object]:
    runs = {name: Run(path, lease=name) for name, path in variants.items()}
    try:
        for run in runs.values():
            run.wait_ready()
        # Past start-up: the first walk of every writable layer is a start-up cost, not
        # the steady state.
        for run in runs.values():
            run.wait_walked(containers)
        # and settled: idle containers backed off to their longest interval, start-up's
        # objects frozen out of the collector's sight (30 s; ebbflow/runtime.py)
        settled = max(run.started for run in runs.values()) + SETTLE
        time.sleep(max(10.0, settled - time.monotonic()))
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
        for _ in range(windows):  # interleaved: drift on a noisy machine hits each alike
            for name, run in runs.items():
                measured[name].append(run.window(seconds))
        result: dict[str, object] = {}
        for name, run in runs.items():
            cycles = []  # the containers input's own last cycle, after the windows
            for _ in range(10):
                cycles.append(run.cycle_ms())
                time.sleep(1.0)
            plain = [run.metrics() for _ in range(5)]
            packed = [run.metrics(gzipped=True) for _ in range(5)]
            result[name] = {
                "cpu_percent": statistics.median(w["cpu_percent"] for w in measured[name]),
                "cpu_windows": [round(w["cpu_percent"], 2) for w in measured[name]],
                "steady_cycle_ms": statistics.median(cycles),
                "peak_rss_mb": max(w["peak_rss_mb"] for w in measured[name]),
                "metrics_mb": len(plain[0][0]) / 1e6,
                "metrics_ms": 1000 * statistics.median(t for _, t in plain),
                "metrics_gzip_mb": len(packed[0][0]) / 1e6,
                "metrics_gzip_ms": 1000 * statistics.median(t for _, t in packed),
            }
        return result
    finally:
        for run in runs.values():
            run.stop()


def appearance(repeats: int = 5) -> list[float]:
    """Seconds from `docker run` returning to the new container on /metrics."""
    run = Run(None)
    seen = []
    try:
        run.wait_ready()
        time.sleep(20)  # the existing ones settled into their idle intervals
        for i in range(repeats):
            name = f"ebbscale-{RUN}-new-{i}"
            docker("run", "-d", "--network", "none", "--label", f"ebbflow.bench={RUN}",
                   "--name", name, IMAGE, "sleep", "86400")  # fmt: skip
            started = time.monotonic()
            needle = f'name="{name}"'.encode()
            while needle not in run.metrics()[0]:
                if time.monotonic() - started > 60:
                    raise RuntimeError(f"{name} not on /metrics after 60 s")
                time.sleep(0.05)
            seen.append(time.monotonic() - started)
            docker("rm", "-f", name)
            time.sleep(3)
    finally:
        run.stop()
    return seen


def profile(seconds: float) -> dict[str, list[tuple[str, float]]]:
    """py-spy over this checkout's `ebbflow run`: the top frames by own and total time."""
    spy = Path(PYTHON).with_name("py-spy")
    if not spy.exists():
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "py-spy"], check=True)
    run = Run(None)
    raw = run.workdir / "profile.txt"
    try:
        run.wait_ready()
        run.wait_walked(len(bench_containers()))  # past the first walks (as overhead())
        time.sleep(10)
        subprocess.run([str(spy), "record", "-p", str(run.proc.pid), "-d", str(int(seconds)),
                        "-r", "100", "-f", "raw", "-o", str(raw), "--nonblocking"],
                       capture_output=True, check=True, timeout=seconds + 60)  # fmt: skip
        own: collections.Counter[str] = collections.Counter()
        total: collections.Counter[str] = collections.Counter()
        count = 0
        for line in raw.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            frames = stack.split(";")
            count += int(n)
            own[frames[-1]] += int(n)
            for frame in set(frames):
                total[frame] += int(n)
    finally:
        run.stop()
    return {
        "own": [(f, round(100 * n / count, 1)) for f, n in own.most_common(15)],
        "total": [(f, round(100 * n / count, 1)) for f, n in total.most_common(40)],
    }


def install(rev: str) -> str:
    """`rev` of this repository installed beside this checkout (for PYTHONPATH)."""
    root = HERE.parent
    source = Path(tempfile.mkdtemp(prefix="ebbscale-src-"))
    target = Path(tempfile.mkdtemp(prefix="ebbscale-lib-"))
    subprocess.run(["git", "-C", str(root), "archive", "--format=tar", "-o",
                    str(source / "src.tar"), rev], check=True)  # fmt: skip
    subprocess.run(["tar", "-xf", "src.tar"], cwd=source, check=True)
    subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(source)], check=True)  # fmt: skip
    return str(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window", type=float, default=30)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--before", help="a git revision to measure beside this checkout")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not args.reuse and bench_containers():
        sys.exit("containers labelled ebbflow.bench run already: remove them, or pass --reuse")
    build = Path(tempfile.mkdtemp(prefix="ebbscale-c-"))
    cfloor = build / "cfloor"
    subprocess.run(["gcc", "-O2", "-o", str(cfloor), str(HERE / "cfloor.c")], check=True)
    variants: dict[str, str | None] = {"now": None}
    if args.before:
        variants = {"before": install(args.before), "now": None}
    report: dict[str, object] = {"variants": list(variants), "sizes": {}}
    try:
        for size in sorted(sizes, reverse=True):  # start them all once, then remove
            resize(size)
            running = len(docker("ps", "-q").split())
            print(f"{size} bench containers ({running} running)", file=sys.stderr, flush=True)
            row: dict[str, object] = {"running": running, **floors(cfloor, args.cycles)}
            row.update(overhead(variants, args.windows, args.window, size))
            if size == max(sizes):
                row["appears_s"] = appearance()
                if args.profile:
                    row["profile"] = profile(60)
            report["sizes"][str(size)] = row  # type: ignore[index]
            print(json.dumps(row), file=sys.stderr, flush=True)
        small, large = report["sizes"][str(min(sizes))], report["sizes"][str(max(sizes))]  # type: ignore[index]
        added = large["running"] - small["running"]
        if added <= 0:  # one size: no slope to give
            return
        report["slope_per_container"] = {
            name: {
                "cpu_percent": (large[name]["cpu_percent"] - small[name]["cpu_percent"]) / added,
                "rss_kb": 1000 * (large[name]["peak_rss_mb"] - small[name]["peak_rss_mb"]) / added,
            }
            for name in variants
        } | {"cycle_ms": (large["cycle_ms"] - small["cycle_ms"]) / added}
    finally:
        resize(0)
        shutil.rmtree(build, ignore_errors=True)
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
