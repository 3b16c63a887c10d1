"""A stalled event loop and a wall clock that jumps are told apart, logged and counted."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ebbflow.loop_watch import TICK, LoopWatch


def values(watch: LoopWatch) -> dict[str, float]:
    return {s.name: s.value for s in watch.telemetry(0.0)}


def test_a_stall_and_a_jump_are_told_apart(caplog: pytest.LogCaptureFixture) -> None:
    watch = LoopWatch()
    with caplog.at_level(logging.WARNING, logger="ebbflow.loop"):
        watch.note(0.5, 0.52, 0.52)  # on time, give or take
        watch.note(0.5, 2.5, 2.5)  # stalled 2 s: both clocks moved alike
        watch.note(0.5, 0.5, 30.5)  # the wall clock stepped 30 s forward (or a suspend)
        watch.note(0.5, 0.5, -9.5)  # and 10 s back
    seen = values(watch)
    assert seen["ebbflow_event_loop_stalls_total"] == 1
    assert seen["ebbflow_wall_clock_jumps_total"] == 2
    assert seen["ebbflow_event_loop_lag_max_seconds"] == pytest.approx(2.0)
    assert seen["ebbflow_event_loop_lag_seconds"] == 0.0
    assert values(watch)["ebbflow_event_loop_lag_max_seconds"] == 0.0  # per report
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "the event loop stalled: a timer ran 2.0 s late"
    assert said[1].startswith("the wall clock jumped +30.0 s beside monotonic time")
    assert said[2].startswith("the wall clock jumped -10.0 s")
    assert len(said) == 3


async def test_a_blocking_call_on_the_loop_is_a_stall() -> None:
    watch = LoopWatch()
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(TICK * 1.5)
        time.sleep(1.6)  # noqa: ASYNC251 -- the fault: the loop is blocked
        await asyncio.sleep(TICK * 1.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    seen = values(watch)
    assert seen["ebbflow_event_loop_stalls_total"] == 1
    assert seen["ebbflow_event_loop_lag_max_seconds"] >= 1.0
    assert seen["ebbflow_wall_clock_jumps_total"] == 0
