"""The lease on a real engine, on a virtual clock: two instances never both act, and a
holder that dies is replaced within two epochs and the grace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ebbflow.config import LeaseConfig, ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.lease import Lease
from tests.conftest import RUN_ID, TEST_LABEL, VirtualClock, docker_cli

pytestmark = pytest.mark.integration

PERIOD, GRACE = 5.0, 1.0


@pytest.fixture
def leases(engine: str) -> Iterator[tuple[Lease, Lease, VirtualClock]]:
    clock = VirtualClock(1000 * PERIOD + 0.5)  # half a second into epoch 1000
    scope = ScopeConfig(labels={TEST_LABEL: RUN_ID, "ebbflow.lease-test": "1"})
    config = LeaseConfig(period=PERIOD, grace=GRACE)
    a, b = (Lease(DockerHandle(), scope, config, clock) for _ in range(2))
    a.owner, b.owner = "instance-a", "instance-b"
    yield a, b, clock
    ids = docker_cli("ps", "-aq", "--filter", "label=ebbflow.lease-test=1").split()
    if ids:
        docker_cli("rm", "-f", *ids)


async def test_one_holder_at_a_time_and_a_dead_one_is_replaced(
    leases: tuple[Lease, Lease, VirtualClock],
) -> None:
    a, b, clock = leases
    try:
        await a._ensure_image()
        await a.tick()
        assert not a.may_act()  # within the grace: the holder may still come
        clock.advance(0.6)
        await a.tick()
        await b.tick()
        assert a.may_act() and not b.may_act()
        assert b.leader == "instance-a"
        for _ in range(30):  # 15 s: a renews, b stands by
            clock.advance(0.5)
            await a.tick()
            await b.tick()
            assert a.may_act() and not b.may_act()
        died = clock()
        took_over = None
        for _ in range(60):  # a is gone (SIGKILL): it renews no more
            clock.advance(0.5)
            await b.tick()
            assert not (a.may_act() and b.may_act())  # never both
            if b.may_act():
                took_over = clock()
                break
        assert took_over is not None and took_over - died <= 2 * PERIOD + GRACE + 0.5
        assert b.leader == "instance-b" and b.transitions == 1
        clock.advance(0.5)
        await b.tick()  # the holder cleans up the epochs that are over
        names = docker_cli("ps", "-a", "--format", "{{.Names}}", "--filter",
                           "label=ebbflow.lease-test=1").split()  # fmt: skip
        assert 2 <= len(names) <= 3, names  # the last epoch, this one and the next
    finally:
        await a.docker.close()
        await b.docker.close()


async def test_a_clean_stop_hands_over_at_once(leases: tuple[Lease, Lease, VirtualClock]) -> None:
    a, b, clock = leases
    try:
        await a._ensure_image()
        clock.advance(0.6)
        await a.tick()
        assert a.may_act()
        for _ in range(12):  # two epochs on: a chain of three, the last one over
            clock.advance(0.5)
            await a.tick()
        await a._release()
        a.owned = None
        owned_by_a = ("ps", "-aq", "--filter", "label=ebbflow.lease.owner=instance-a")
        assert docker_cli(*owned_by_a) == ""  # nothing of a's left on the engine
        clock.advance(0.5)
        await b.tick()
        assert b.may_act()  # the current epoch was free: no waiting out the lease
    finally:
        await a.docker.close()
        await b.docker.close()


async def test_the_holder_lists_its_objects_once_an_epoch_not_once_a_tick(
    leases: tuple[Lease, Lease, VirtualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _, clock = leases
    listings: list[float] = []
    real_list = a.docker.client.containers.list

    async def counted(**kwargs: object) -> object:
        listings.append(clock())
        return await real_list(**kwargs)

    monkeypatch.setattr(a.docker.client.containers, "list", counted)
    try:
        await a._ensure_image()
        clock.advance(0.6)
        await a.tick()
        assert a.may_act()
        listings.clear()
        for _ in range(40):  # 20 s at a tick every 0.5 s: the rest of one epoch and four more
            clock.advance(0.5)
            await a.tick()
            assert a.may_act()
        assert len(listings) == 5  # one clean an epoch, not 40 listings
        assert len({int(t // PERIOD) for t in listings}) == 5
        names = docker_cli("ps", "-a", "--format", "{{.Names}}", "--filter",
                           "label=ebbflow.lease-test=1").split()  # fmt: skip
        assert 2 <= len(names) <= 3, names  # the chain stays short all the same
    finally:
        await a.docker.close()
