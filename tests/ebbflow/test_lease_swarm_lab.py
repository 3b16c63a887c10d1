"""The Swarm lease (ebbflow/lease_swarm.py) on the real three-manager lab: one decider
acts; when its node's engine stops, another acts within the bound, and never two at once;
the loss of the raft leader's node does not interrupt the holder; a clean stop hands the
lease over at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from ebbflow.bus import Bus
from ebbflow.config import LeaseConfig, ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.lease_swarm import SwarmLease
from ebbflow.model import OwnershipChange
from tests import lab

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("lab_nodes")]

SCOPE = ScopeConfig(labels={"ebbflow.test.lease": "swarm"})


class Watch:
    """Both deciders sampled every 50 ms: how often both acted, and when each did."""

    def __init__(self, leases: list[SwarmLease]) -> None:
        self.leases = leases
        self.both = 0
        self.samples: list[tuple[float, tuple[bool, ...]]] = []
        self.changes: dict[SwarmLease, list[OwnershipChange]] = {}

    async def run(self) -> None:
        while True:
            acting = tuple(lease.may_act() for lease in self.leases)
            self.both += sum(acting) > 1
            self.samples.append((time.monotonic(), acting))
            await asyncio.sleep(0.05)

    def acting(self) -> list[SwarmLease]:
        return [lease for lease in self.leases if lease.may_act()]


@contextlib.asynccontextmanager
async def deciders(
    name: str, *nodes: str, ttl: float
) -> AsyncIterator[tuple[list[SwarmLease], Watch, dict[SwarmLease, asyncio.Task[None]]]]:
    config = LeaseConfig(backend="swarm", name=name, ttl=ttl)
    handles = [DockerHandle(lab.node(n).host, timeout=3.0, node=n) for n in nodes]
    leases = [SwarmLease(h, SCOPE, config, Bus()) for h in handles]
    watch = Watch(leases)
    for lease in leases:
        assert lease.bus is not None
        lease.bus.observe(watch.changes.setdefault(lease, []).append, OwnershipChange)
    tasks = {lease: asyncio.create_task(lease.run()) for lease in leases}
    watcher = asyncio.create_task(watch.run())
    try:
        yield leases, watch, tasks
    finally:
        for task in [*tasks.values(), watcher]:
            task.cancel()
        await asyncio.gather(*tasks.values(), watcher, return_exceptions=True)
        for handle in handles:
            await handle.close()
        lab.node("n1").docker("config", "rm", f"ebbflow-lease-{leases[0].id}", check=False)


async def until(what: str, check: object, timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - began
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout:g}s")


def node_of(lease: SwarmLease) -> lab.Node:
    return lab.node(lease.docker.node)


def raft_leader() -> str:
    managers = lab.node("n1").docker("node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
    return next(line.split()[0] for line in managers.splitlines() if "Leader" in line)


def away_from_the_raft_leader() -> list[str]:
    """The two managers that do not lead the raft: stopping one of them costs no election
    (one happens when the leader's engine stops, and takes longer than a short ttl)."""
    raft = raft_leader()
    return [n for n in lab.NODES if n != raft]


async def test_one_decider_acts_and_another_takes_over_when_its_node_stops() -> None:
    ttl = 6.0
    async with deciders("takeover", *away_from_the_raft_leader(), ttl=ttl) as (leases, watch, _):
        await until("one decider acting", lambda: len(watch.acting()) == 1, ttl)
        (holder,) = watch.acting()
        (other,) = [lease for lease in leases if lease is not holder]
        epoch = holder.epoch
        await asyncio.sleep(2 * ttl)  # renewals go on: the other never takes it
        assert watch.acting() == [holder] and other.transitions == 0
        stopped = node_of(holder)
        try:
            began = time.monotonic()
            await asyncio.to_thread(lab.engine_stop, stopped)
            # bound: a ttl after the holder's last renewal, plus one renewal interval
            took = await until("the other decider acting", other.may_act, ttl + ttl / 6 + 3)
            print(f"hand-over {took:.1f}s after the engine stop began")
            assert not holder.may_act() and holder.problem is not None
            assert other.epoch == epoch + 1  # one change of holder, one epoch
            changes = watch.changes[other]
            assert [c.acting for c in changes] == [True]
            assert "stopped renewing" in changes[0].reason
            assert watch.both == 0, "two deciders acted at once"
            assert time.monotonic() - began >= ttl * 0.9 - 1  # not before the holder's deadline
        finally:
            await asyncio.to_thread(lab.engine_up, stopped)
            await asyncio.to_thread(lab.swarm_up)


async def test_the_holder_keeps_the_lease_through_the_loss_of_the_raft_leader() -> None:
    ttl = LeaseConfig().ttl  # the default: it rides out a raft election (12 s here)
    raft = raft_leader()
    # the deciders run beside the raft leader
    async with deciders("quorum", *away_from_the_raft_leader(), ttl=ttl) as (leases, watch, _):
        await until("one decider acting", lambda: len(watch.acting()) == 1, ttl)
        (holder,) = watch.acting()
        stopped = lab.node(raft)
        try:
            began = time.monotonic()
            await asyncio.to_thread(lab.engine_stop, stopped)
            epoch = holder.epoch
            while time.monotonic() - began < ttl:
                assert holder.may_act(), (
                    f"the holder stopped acting {time.monotonic() - began:.1f}s in"
                )
                await asyncio.sleep(0.2)
            assert holder.epoch == epoch and holder.transitions == 1
            assert holder.problem is None  # renewing through the new raft leader
            assert watch.both == 0 and sum(lease.transitions for lease in leases) == 1
        finally:
            await asyncio.to_thread(lab.engine_up, stopped)
            await asyncio.to_thread(lab.swarm_up)


async def test_a_clean_stop_hands_the_lease_over_at_once() -> None:
    ttl = 9.0
    async with deciders("release", *away_from_the_raft_leader(), ttl=ttl) as (
        leases,
        watch,
        tasks,
    ):
        await until("one decider acting", lambda: len(watch.acting()) == 1, ttl)
        (holder,) = watch.acting()
        (other,) = [lease for lease in leases if lease is not holder]
        tasks[holder].cancel()
        await asyncio.gather(tasks[holder], return_exceptions=True)
        assert not holder.may_act()
        took = await until("the other decider acting", other.may_act, ttl / 6 + 3)
        assert took < ttl * 0.9  # well before an unrenewed lease would have lapsed
        assert watch.both == 0
