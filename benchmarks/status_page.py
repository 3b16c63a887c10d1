"""The status page at scale: 1,000 containers in 100 services (by default), with no engine.

A catalog is filled from container events as discovery would publish them, with policies,
one invalid service and one paused one, decisions and healing steps in the state file; the
page is then served by the real routes (`ebbflow/web/routes.py`) on loopback and measured:

- the page's size (`/`, and gzip-compressed, as a proxy would send it);
- the server's work per render: building the snapshot, rendering the HTML (median of N);
- in Debian's headless chromium (Selenium, chromium-driver): the time to first render
  (navigation start → first contentful paint) and the time to apply a live update (the
  server-sent event's arrival → the live part replaced and laid out), medians of N.

    .venv/bin/python benchmarks/status_page.py [--containers 1000 --services 100 --runs 9]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import MappingProxyType

from aiohttp import web

from ebbflow.bus import Bus
from ebbflow.catalog import ServiceCatalog
from ebbflow.config import RulesConfig, ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.model import (
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    Decision,
    HealingStep,
    OperatorControls,
    ServiceKey,
)
from ebbflow.nodes import Nodes
from ebbflow.state import DecisionStore
from ebbflow.web.routes import StatusPages
from ebbflow.web.view import StatusView

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.ebbflow.web.browser import chromium  # noqa: E402

# Wraps EventSource before the page's own script runs: when each live event arrives, and
# when the live part has been replaced and laid out after it.
PROBE = """
window.__updates = [];
window.__frames = [];
const Real = window.EventSource;
window.EventSource = function (url) {
  const source = new Real(url);
  const add = source.addEventListener.bind(source);
  source.addEventListener = (type, listener, options) => add(type, (event) => {
    const arrived = performance.now();
    listener(event);  // the page's own: the live part replaced
    document.body.offsetHeight;  // laid out
    window.__updates.push(performance.now() - arrived);
    requestAnimationFrame(() => requestAnimationFrame(
      () => window.__frames.push(performance.now() - arrived)));  // painted
  }, options);
  return source;
};
"""


def fill(services: int, containers: int, state: Path) -> tuple[Bus, StatusView]:
    bus = Bus()
    catalog = ServiceCatalog(bus, RulesConfig(), ScopeConfig(), None, time.time)
    view = StatusView(bus, Nodes([DockerHandle("unix:///nonexistent.sock", 1.0)]), time.time)
    store = DecisionStore(state)
    now = time.time()
    per = containers // services
    for s in range(services):
        key = ServiceKey("compose", f"svc{s:03d}", "bench")
        labels = {
            "com.docker.compose.project": "bench",
            "com.docker.compose.service": f"svc{s:03d}",
            "ebbflow.scale.metric": "cpu",
            "ebbflow.scale.target": "60",
            "ebbflow.scale.max_replicas": "lots" if s == 7 else str(per + 5),
        }
        for r in range(per):
            cid = f"{s:04d}{r:04d}".ljust(64, "0")
            info = ContainerInfo(cid, f"bench-svc{s:03d}-{r + 1}", "busybox",
                                 MappingProxyType(labels), created=now - 600,
                                 started_at=now - 600)  # fmt: skip
            bus.publish(ContainerEvent(ContainerEventKind.START, info, now))
        decision = Decision(key, per - 1, per, f"cpu 75% > target 60%: {per - 1} → {per}", now)
        store.record(decision, ("ok", "started 1"))
        bus.publish(decision)
        if s % 10 == 0:
            name = f"bench-svc{s:03d}-1"
            step = HealingStep(key, name, "restart", "exited (code 1)", 1, True, "restarted", now)
            store.record_step(step, name)
            bus.publish(step)
    bus.publish(OperatorControls(frozenset({"bench/svc003"}), frozenset(), now))
    view.attach(catalog, store)
    return bus, view


def serve(pages: StatusPages, ready: threading.Event, port: list[int],
          loop_box: list[asyncio.AbstractEventLoop]) -> None:  # fmt: skip
    async def main() -> None:
        app = web.Application()
        pages.add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])
        loop_box.append(asyncio.get_running_loop())
        ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bus, view = fill(args.services, args.containers, Path(tmp) / "state.db")
        pages = StatusPages(view)
        snap, render = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            status = view.snapshot()
            t1 = time.perf_counter()
            html = pages.pages.index(status)
            t2 = time.perf_counter()
            snap.append((t1 - t0) * 1000)
            render.append((t2 - t1) * 1000)
        size, zipped = len(html.encode()), len(gzip.compress(html.encode()))
        ready, port, loops = threading.Event(), [], []
        server = threading.Thread(target=serve, args=(pages, ready, port, loops), daemon=True)
        server.start()
        ready.wait(10)
        url = f"http://127.0.0.1:{port[0]}/"
        first: list[float] = []
        with chromium() as driver:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})
            for _ in range(args.runs):
                driver.get(url)
                fcp = None
                for _ in range(100):  # the paint entry may come after the load event
                    fcp = driver.execute_script(
                        "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                        "return p ? p.startTime : null;"
                    )
                    if fcp is not None:
                        break
                    time.sleep(0.05)
                assert fcp is not None, "no first-contentful-paint entry"
                first.append(float(fcp))
            driver.get(url)
            time.sleep(0.5)  # the stream is open
            for i in range(args.runs):
                before = len(driver.execute_script("return window.__updates"))
                # a change, as a decision published on the bus would make it
                loops[0].call_soon_threadsafe(view._bump)
                deadline = time.monotonic() + 10
                while len(driver.execute_script("return window.__updates")) <= before:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"update {i} never arrived")
                    time.sleep(0.05)
            updates = [float(x) for x in driver.execute_script("return window.__updates")]
            time.sleep(0.5)
            frames = [float(x) for x in driver.execute_script("return window.__frames")]
        print(f"{args.containers} containers in {args.services} services, {args.runs} runs")
        print(f"page size: {size / 1024:.0f} KiB ({zipped / 1024:.0f} KiB gzip)")
        print(f"server: snapshot {statistics.median(snap):.1f} ms, "
              f"render {statistics.median(render):.1f} ms (medians)")  # fmt: skip
        print(f"browser: first contentful paint {statistics.median(first):.0f} ms; an update "
              f"applied and laid out {statistics.median(updates):.0f} ms, painted "
              f"{statistics.median(frames):.0f} ms after it arrived (medians)")  # fmt: skip
        del bus


if __name__ == "__main__":
    main()
