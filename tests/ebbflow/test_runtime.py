"""The runtime `ebbflow run` sets up: the collector's tuning in this process (patched), the
allocator's in a child process of its own (it cannot be undone)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from ebbflow import runtime
from ebbflow.cli import run

# A child that frees a large buffer after glibc's threshold has risen past its size: with
# the default threshold it stays in the heap, with ebbflow's it goes back.
AFTER_A_BIG_FREE = textwrap.dedent(
    """
    import sys
    from ebbflow import runtime
    if sys.argv[1] == "tuned":
        assert runtime.tune_allocator()
    def rss_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    first = bytearray(16 << 20); first[::4096] = b"x" * len(first[::4096]); del first
    before = rss_kb()
    body = bytearray(8 << 20); body[::4096] = b"x" * len(body[::4096]); del body
    print(rss_kb() - before)
    """
)


def kept_kb(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", AFTER_A_BIG_FREE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, Linux only")
def test_a_big_buffer_freed_is_given_back_to_the_system() -> None:
    assert kept_kb("default") > 6 * 1024  # glibc kept most of the 8 MB
    assert kept_kb("tuned") < 1024


@pytest.mark.parametrize(("runs_for", "freezes"), [(0.3, 1), (0.0, 0)])
async def test_run_tunes_the_garbage_collector_for_a_long_life(
    monkeypatch: pytest.MonkeyPatch, runs_for: float, freezes: int
) -> None:
    """`ebbflow run` collects the young generation less often, and moves what start-up
    built out of the garbage collector's sight once it settled; an instance that stops
    before that freezes nothing."""
    frozen: list[None] = []
    thresholds: list[tuple[int, ...]] = []

    async def run_app(_app: object) -> None:
        await asyncio.sleep(runs_for)

    monkeypatch.setattr(runtime, "SETTLED_AFTER", 0.05)
    monkeypatch.setattr(run, "run_app", run_app)
    monkeypatch.setattr(runtime.gc, "freeze", lambda: frozen.append(None))
    monkeypatch.setattr(runtime.gc, "set_threshold", lambda *t: thresholds.append(t))
    await run._run(None)  # type: ignore[arg-type]
    await asyncio.sleep(0.1)  # a timer left behind would fire here
    assert len(frozen) == freezes
    assert [t[0] for t in thresholds] == [runtime.YOUNG_THRESHOLD]
