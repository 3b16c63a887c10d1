"""Dynamic housekeeping over the fixture tree, on a virtual clock: an idle container is
read less and less often, one that changes (or that a policy reads) every cycle, and what
/metrics shows is the whole set all along."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ebbflow.app import build_context
from ebbflow.collector.containers import plugin
from ebbflow.collector.containers.config import ContainersConfig
from ebbflow.collector.containers.housekeeping import Housekeeping, Schedule
from ebbflow.config import AppConfig
from ebbflow.exporters.prometheus.snapshot import Snapshot
from ebbflow.model import SampleBatch
from ebbflow.rules.tracking import STALE_AFTER

from . import test_cgroups
from .test_cgroups import CID, CgroupV1
from .test_collector import INFO, make_input


@pytest.fixture
def tree(tmp_path: Path) -> CgroupV1:
    """A container's cgroup v1 files (test_cgroups' fixture tree)."""
    return test_cgroups.v1.__wrapped__(tmp_path)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ebbflow.collector.containers.housekeeping.random.uniform", lambda a, b: 1)


def cycles(tree: CgroupV1, clock, housekeeping: Housekeeping, infos, n: int, change=None):
    """Read `n` cycles a second apart; the cycles in which each container was read, and
    every batch published."""
    collector = make_input(tree, clock)
    collector.housekeeping = housekeeping
    batches: list[SampleBatch] = []
    collector.bus.publish = batches.append  # type: ignore[method-assign]
    read: dict[str, list[int]] = {info.name: [] for info in infos}
    for cycle in range(n):
        if change is not None:
            change(cycle)
        samples = collector.read_all(list(infos))
        for name in {s.label("name") for s in samples} - {""}:
            read[name].append(cycle)
        collector.publish(samples)
        clock.advance(1.0)
    return collector, read, batches


def test_an_idle_container_backs_off_to_the_most_and_a_change_brings_it_back(
    tree: CgroupV1,
    clock,
) -> None:
    usage = tree.root / "cpuacct" / f"docker/{CID}" / "cpuacct.usage"

    def busy_from_40_to_50(cycle: int) -> None:
        if 40 <= cycle <= 50:
            usage.write_text(str(3_000_000_000 + cycle))

    collector, read, _ = cycles(tree, clock, Housekeeping(8.0), [INFO], 60, busy_from_40_to_50)
    # unchanged: read 1, 2, 4, 8, 8 ... seconds apart. Busy from 40: seen at its next read
    # (47, as cAdvisor sees it), then every cycle while it lasts, then backing off again
    assert read["shop_web_1"] == [0, 1, 3, 7, 15, 23, 31, 39, 47, 48, 49, 50, 51, 53, 57]
    counted = {s.name: s.value for s in collector.telemetry(0.0)}
    assert counted["ebbflow_containers_idle"] == 1
    collector.read_all([])  # gone: no longer counted
    assert {s.name: s.value for s in collector.telemetry(0.0)}["ebbflow_containers_idle"] == 0


def test_a_new_container_a_policy_reads_and_a_labelled_one_are_read_every_cycle(
    tree: CgroupV1,
    clock,
) -> None:
    watched = dataclasses.replace(INFO, id="b" * 64, name="watched")
    labelled = dataclasses.replace(
        INFO, id="c" * 64, name="labelled", labels={**INFO.labels, "dash.board": "1"}
    )
    for info in (watched, labelled):  # the same cgroup files, under their own ids
        for controller in ("cpuacct", "cpu", "memory", "blkio", "pids"):
            source = tree.root / controller / f"docker/{CID}"
            if source.exists():
                target = tree.root / controller / f"docker/{info.id}"
                target.mkdir(parents=True, exist_ok=True)
                for f in source.iterdir():
                    (target / f.name).write_bytes(f.read_bytes())
    housekeeping = Housekeeping(15.0, ("dash.board",), closely=lambda cid: cid == "b" * 64)
    _, read, _ = cycles(tree, clock, housekeeping, [INFO, watched, labelled], 10)
    assert read["watched"] == read["labelled"] == list(range(10))
    assert read["shop_web_1"] == [0, 1, 3, 7]
    assert housekeeping.due(INFO, None, 0.0)  # one never read: at once


def test_metrics_show_every_container_all_along_and_a_gone_one_goes_at_once(
    tree: CgroupV1,
    clock,
) -> None:
    collector, read, batches = cycles(tree, clock, Housekeeping(15.0), [INFO], 10)
    assert read["shop_web_1"] == [0, 1, 3, 7]
    snapshot = Snapshot()
    for batch in batches:
        snapshot.update(batch)
    names = {s.label("name") for series in snapshot.sources() for s in series.values()}
    assert "shop_web_1" in names  # read 3 s ago, shown all the same
    # only the first cycle's whole set is a repeat; every other batch is partial and new
    assert [(b.replace, b.repeat) for b in batches[:3]] == [
        (False, False), (True, True), (False, False),
    ]  # fmt: skip
    before = len(batches)
    collector.publish(collector.read_all([]))  # it went
    gone, whole = batches[before:]
    assert (whole.replace, whole.repeat) == (True, True)
    snapshot.update(gone)
    snapshot.update(whole)
    names = {s.label("name") for series in snapshot.sources() for s in series.values()}
    assert "shop_web_1" not in names


def test_max_interval_0_reads_every_container_every_cycle_in_one_full_batch(
    tree: CgroupV1,
    clock,
) -> None:
    _, read, batches = cycles(tree, clock, Housekeeping(0.0), [INFO], 5)
    assert read["shop_web_1"] == [0, 1, 2, 3, 4]
    assert all(b.replace and not b.repeat for b in batches) and len(batches) == 5


def test_schedule_doubles_to_the_cap_and_resets() -> None:
    h, s = Housekeeping(5.0), Schedule()
    intervals = []
    for signature in [(1.0,)] * 5 + [(2.0,)] + [(2.0,)] * 2:
        h.next(s, signature, 1.0, 0.0)
        intervals.append(s.interval)
    assert intervals == [1.0, 2.0, 4.0, 5.0, 5.0, 1.0, 2.0, 4.0]


def test_a_renamed_container_leaves_no_series_under_its_old_name(
    tree: CgroupV1,
    clock,
) -> None:
    collector, _, batches = cycles(tree, clock, Housekeeping(8.0), [INFO], 3)
    renamed = dataclasses.replace(INFO, name="shop_web_renamed")
    collector.publish(collector.read_all([renamed]))
    snapshot = Snapshot()
    for batch in batches:
        snapshot.update(batch)
    names = {s.label("name") for series in snapshot.sources() for s in series.values()}
    assert names - {""} == {"shop_web_renamed"}


def test_idle_containers_back_off_further_where_the_process_decides_itself() -> None:
    """Role all: the catalog beside the input knows every policy, and what one reads is
    read every cycle; an agent stays under the rules' 10 s freshness for a decider
    elsewhere, whose config policies it may not know."""
    config = ContainersConfig()
    assert config.longest_interval("all") == 15.0
    assert config.longest_interval("agent") == 8.0 < STALE_AFTER
    assert ContainersConfig(max_interval=3).longest_interval("all") == 3.0
    assert ContainersConfig(max_interval=0).longest_interval("agent") == 0.0
    for role, longest in (("all", 15.0), ("agent", 8.0)):
        made = plugin.create(build_context(AppConfig(role=role)), config)
        assert made.housekeeping.max_interval == longest, role
