import asyncio

from ebbflow.bus import Bus
from ebbflow.model import Sample, SampleBatch


def batch(n: int) -> SampleBatch:
    return SampleBatch("src", float(n), (Sample("x", float(n)),))


async def test_each_subscriber_gets_its_types_only() -> None:
    bus = Bus()
    samples = bus.subscribe("samples", SampleBatch)
    everything = bus.subscribe("all")
    bus.publish(batch(1))
    bus.close()
    assert [e async for e in samples] == [batch(1)]
    assert [e async for e in everything] == [batch(1)]


async def test_an_event_a_subscriber_does_not_accept_is_never_queued() -> None:
    bus = Bus()
    odd = bus.subscribe("odd", SampleBatch, capacity=2, accept=lambda e: e.timestamp % 2 == 1)  # type: ignore[attr-defined]
    for n in range(6):
        bus.publish(batch(n))
    (stats,) = bus.stats()
    assert (stats.depth, stats.dropped) == (2, 1)  # 1, 3, 5 offered: only they count
    bus.close()
    assert [e.timestamp async for e in odd] == [3.0, 5.0]  # type: ignore[union-attr]


async def test_a_filter_that_raises_lets_the_event_through_and_is_counted() -> None:
    bus = Bus()
    broken = bus.subscribe("broken", accept=lambda e: 1 / 0 == 0)
    bus.publish(batch(1))
    bus.close()
    assert [e async for e in broken] == [batch(1)]
    assert bus.observer_errors == 1


async def test_a_full_queue_drops_its_oldest_and_counts_it() -> None:
    bus = Bus()
    slow = bus.subscribe("slow", capacity=2)
    bus.subscribe("fast", capacity=10)
    for n in range(5):
        bus.publish(batch(n))
    stats = {s.name: s for s in bus.stats()}
    assert (stats["slow"].depth, stats["slow"].dropped) == (2, 3)
    assert (stats["fast"].depth, stats["fast"].dropped) == (5, 0)
    bus.close()
    assert [e.timestamp async for e in slow] == [3.0, 4.0]  # type: ignore[union-attr]


async def test_publish_never_waits_for_a_subscriber() -> None:
    bus = Bus()
    bus.subscribe("nobody-reads", capacity=1)
    for n in range(10_000):
        bus.publish(batch(n))
    assert bus.published == 10_000


async def test_get_wakes_on_publish() -> None:
    bus = Bus()
    sub = bus.subscribe("waiter")
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.publish(batch(7))
    assert await asyncio.wait_for(waiter, 1) == batch(7)


def test_telemetry_reports_depth_and_drops() -> None:
    bus = Bus()
    bus.subscribe("out", capacity=1)
    bus.publish(batch(1))
    bus.publish(batch(2))
    values = {(s.name, s.labels): s.value for s in bus.telemetry(0.0)}
    assert values[("ebbflow_bus_dropped_total", (("subscriber", "out"),))] == 1
    assert values[("ebbflow_bus_queue_depth", (("subscriber", "out"),))] == 1
