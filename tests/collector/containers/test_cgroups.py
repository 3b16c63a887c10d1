"""The cgroup readers over fixture trees laid out like a real v1 and v2 host."""

import os
from pathlib import Path

import pytest

from ebbflow.collector.containers.cgroups import (
    CgroupV1,
    CgroupV2,
    detect,
    net_dev_path,
    read_net_dev,
    read_proc_cgroup,
)

CID = "c0ffee" + "0" * 58
PID = 4242
NET_DEV = (
    "Inter-|   Receive                   |  Transmit\n"
    " face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop ...\n"
    "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n"
    "  eth0: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0\n"
)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def v1(tmp_path: Path) -> CgroupV1:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    rel = f"docker/{CID}"
    write(
        proc / str(PID) / "cgroup",
        "".join(f"{n}:{c}:/{rel}\n" for n, c in enumerate(["cpu", "cpuacct", "memory", "blkio"])),
    )
    write(proc / str(PID) / "net" / "dev", NET_DEV)
    write(root / "cpuacct" / rel / "cpuacct.usage", "2500000000\n")
    hz = os.sysconf("SC_CLK_TCK")
    write(root / "cpuacct" / rel / "cpuacct.stat", f"user {2 * hz}\nsystem {hz // 2}\n")
    write(root / "cpu" / rel / "cpu.cfs_quota_us", "50000\n")
    write(root / "cpu" / rel / "cpu.cfs_period_us", "100000\n")
    write(root / "memory" / rel / "memory.usage_in_bytes", "10485760\n")
    write(root / "memory" / rel / "memory.limit_in_bytes", "67108864\n")
    write(
        root / "memory" / rel / "memory.stat",
        "cache 4096\nrss 8192\ninactive_file 1\ntotal_cache 3145728\ntotal_rss 6291456\n"
        "total_inactive_file 2097152\n",
    )
    write(
        root / "blkio" / rel / "blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 1000\n8:0 Write 2000\n8:0 Total 3000\n8:16 Read 10\n8:16 Write 20\nTotal 3030\n",
    )
    return CgroupV1(root, proc)


@pytest.fixture
def v2(tmp_path: Path) -> CgroupV2:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    rel = f"system.slice/docker-{CID}.scope"
    write(root / "cgroup.controllers", "cpu io memory pids\n")
    write(proc / str(PID) / "cgroup", f"0::/{rel}\n")
    write(root / rel / "cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    write(root / rel / "cpu.max", "max 100000\n")
    write(root / rel / "memory.current", "20971520\n")
    write(root / rel / "memory.max", "max\n")
    write(root / rel / "memory.stat", "anon 8388608\nfile 4194304\ninactive_file 1048576\n")
    write(
        root / rel / "io.stat",
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
        "8:16 rbytes=4 wbytes=8 rios=1 wios=1 dbytes=0 dios=0\n",
    )
    return CgroupV2(root, proc)


def test_detect_by_unified_root(v1: CgroupV1, v2: CgroupV2) -> None:
    assert isinstance(detect(v2.root, v2.proc_root), CgroupV2)
    (v2.root / "cgroup.controllers").unlink()
    assert isinstance(detect(v2.root, v2.proc_root), CgroupV1)


def test_v1_reading(v1: CgroupV1) -> None:
    stats = v1.read(v1.locate(CID, PID))
    assert stats.cpu_seconds == 2.5
    assert (stats.cpu_user_seconds, stats.cpu_system_seconds) == (2.0, 0.5)
    assert stats.cpu_limit_cores == 0.5
    assert stats.memory_usage_bytes == 10485760
    assert stats.memory_working_set_bytes == 10485760 - 2097152  # hierarchical inactive_file
    assert (stats.memory_rss_bytes, stats.memory_cache_bytes) == (6291456, 3145728)
    assert stats.memory_limit_bytes == 67108864
    assert (stats.io_read_bytes, stats.io_write_bytes) == (1010, 2020)  # Total lines ignored


def test_v1_unlimited_and_fallback_without_pid(v1: CgroupV1) -> None:
    rel = f"docker/{CID}"
    (v1.root / "cpu" / rel / "cpu.cfs_quota_us").write_text("-1\n")
    (v1.root / "memory" / rel / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    paths = v1.locate(CID, 0)  # no pid: the cgroupfs layout is found by id
    stats = v1.read(paths)
    assert stats.cpu_limit_cores is None and stats.memory_limit_bytes is None


def test_v2_reading(v2: CgroupV2) -> None:
    stats = v2.read(v2.locate(CID, PID))
    assert stats.cpu_seconds == 1.5
    assert (stats.cpu_user_seconds, stats.cpu_system_seconds) == (1.0, 0.5)
    assert stats.cpu_limit_cores is None  # "max"
    assert stats.memory_working_set_bytes == 20971520 - 1048576
    assert stats.memory_limit_bytes is None
    assert (stats.memory_rss_bytes, stats.memory_cache_bytes) == (8388608, 4194304)
    assert (stats.io_read_bytes, stats.io_write_bytes) == (4100, 8200)


def test_v2_quota_and_systemd_fallback(v2: CgroupV2) -> None:
    rel = f"system.slice/docker-{CID}.scope"
    (v2.root / rel / "cpu.max").write_text("150000 100000\n")
    (v2.root / rel / "memory.max").write_text("134217728\n")
    stats = v2.read(v2.locate(CID, 0))
    assert stats.cpu_limit_cores == 1.5 and stats.memory_limit_bytes == 134217728


def test_missing_container_is_a_clear_error(v1: CgroupV1) -> None:
    with pytest.raises(FileNotFoundError, match="deadbeef"):
        v1.locate("deadbeef" * 8, 0)


def test_proc_cgroup_and_net_dev(v1: CgroupV1) -> None:
    assert read_proc_cgroup(v1.proc_root, PID)["memory"] == f"/docker/{CID}"
    (eth0,) = read_net_dev(net_dev_path(v1.proc_root, PID))  # lo is left out
    assert (eth0.interface, eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped) == (
        "eth0",
        5000,
        50,
        1,
        2,
    )
    assert (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped) == (7000, 70, 3, 4)
