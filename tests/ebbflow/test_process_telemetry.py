"""ebbflow's own process_* series and build info."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from ebbflow import process_telemetry
from ebbflow.process_telemetry import ProcessTelemetry, git_revision, revision


def test_the_process_series_are_this_process() -> None:
    now = time.time()
    got = {s.name: s for s in ProcessTelemetry().telemetry(now)}
    cpu = os.times()
    assert 0 < got["process_cpu_seconds_total"].value <= cpu.user + cpu.system + 0.1
    assert got["process_cpu_seconds_total"].kind == "counter"
    # the size of /proc/self/fd (Linux 6.2 and later), or a listing of it, which counts its
    # own descriptor
    assert got["process_open_fds"].value in {n := len(os.listdir("/proc/self/fd")), n - 1}
    assert got["process_max_fds"].value == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert abs(got["process_resident_memory_bytes"].value - rss) < 8 << 20
    assert got["process_virtual_memory_bytes"].value > got["process_resident_memory_bytes"].value
    assert got["process_virtual_memory_max_bytes"].value > 0
    assert now - 3600 < got["process_start_time_seconds"].value <= now
    build = got["ebbflow_build_info"]
    assert build.value == 1.0 and dict(build.labels)["version"] == "0.1.0"
    assert build.help.startswith("A metric with a constant '1' value labeled by version")


def test_open_descriptors_are_counted_each_round_where_the_kernel_gives_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = ProcessTelemetry()
    listings = []
    monkeypatch.setattr(telemetry.process, "num_fds", lambda: listings.append(1) or 7)
    # stands for /proc/self/fd: its size is 0 before Linux 6.2, the count from then on
    fds = tmp_path / "fd"
    fds.write_bytes(b"")
    monkeypatch.setattr(process_telemetry, "FD_DIR", str(fds))
    assert [telemetry.open_fds(100.0 + t) for t in (0, 5, 9.9, 10)] == [7, 7, 7, 7]
    assert len(listings) == 2  # a listing every FDS_TTL
    fds.write_bytes(b"x" * 12)
    assert [telemetry.open_fds(t) for t in (111.0, 112.0)] == [12, 12]
    assert len(listings) == 2  # no listing at all
    monkeypatch.setattr(process_telemetry, "FD_DIR", str(tmp_path / "no-proc"))
    assert telemetry.open_fds(120.0) == 7 and len(listings) == 3  # no /proc: listed


def test_the_revision_is_read_from_a_checkout_without_git(tmp_path: Path) -> None:
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    assert git_revision(tmp_path) is None  # no such ref yet
    (git / "packed-refs").write_text("# pack-refs\n" + "a" * 40 + " refs/heads/main\n")
    assert git_revision(tmp_path) == "a" * 12
    (git / "refs" / "heads" / "main").write_text("b" * 40 + "\n")  # loose wins
    assert git_revision(tmp_path) == "b" * 12
    (git / "HEAD").write_text("c" * 40 + "\n")  # detached
    assert git_revision(tmp_path) == "c" * 12
    assert git_revision(tmp_path / "nowhere") is None


def test_the_images_revision_file_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process_telemetry, "REVISION_FILE", tmp_path / "REVISION")
    monkeypatch.setattr(process_telemetry, "PACKAGE", tmp_path / "pkg")
    assert revision() == "unknown"  # neither a file nor a checkout
    (tmp_path / "REVISION").write_text("0123456789ab\n")
    assert revision() == "0123456789ab"
