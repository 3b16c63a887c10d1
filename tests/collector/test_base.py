import asyncio
import logging

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.base import PollingInput
from ebbflow.model import Sample, SampleBatch


class Flaky(PollingInput):
    name = "flaky"

    def __init__(self, bus: Bus, outcomes: list[str]) -> None:
        super().__init__(bus, interval=0.01, timeout=0.05)
        self.outcomes = outcomes

    async def fetch(self) -> list[Sample]:
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "fail":
            raise ConnectionError("refused")
        if outcome == "hang":
            await asyncio.sleep(10)
        return [Sample("x", 1.0)]


async def test_logs_state_changes_not_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    source = Flaky(Bus(), ["fail", "fail", "hang", "ok", "fail"])
    with caplog.at_level(logging.INFO, "ebbflow.collector"):
        results = [await source.cycle() for _ in range(3)]
        assert source.last_error == "timed out after 0.05s"
        results += [await source.cycle() for _ in range(2)]
    assert [r is not None for r in results] == [False, False, False, True, False]
    assert source.failures == 4
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 2  # once per outage
    assert sum("recovered" in m for m in messages) == 1
    up = {s.name: s.value for s in source.telemetry(0)}
    assert up["ebbflow_input_up"] == 0 and up["ebbflow_input_failures_total"] == 4


async def test_run_publishes_batches_and_survives_failures() -> None:
    bus = Bus()
    sub = bus.subscribe("t", SampleBatch)
    source = Flaky(bus, ["fail", "ok", "fail", "ok"])
    task = asyncio.create_task(source.run())
    first = await asyncio.wait_for(sub.get(), 2)
    second = await asyncio.wait_for(sub.get(), 2)
    task.cancel()
    assert isinstance(first, SampleBatch) and first.source == "flaky"
    assert isinstance(second, SampleBatch)
    assert source.failures >= 2


async def test_collect_once_raises_with_the_reason() -> None:
    with pytest.raises(RuntimeError, match="flaky: ConnectionError: refused"):
        await Flaky(Bus(), ["fail"]).collect_once()
