"""The cgroup readers over fixture trees laid out like a real v1 and v2 host."""

import os
from pathlib import Path

import pytest

from ebbflow.collector.containers.cgroups import (
    CgroupFiles,
    CgroupV1,
    CgroupV2,
    DescriptorBudget,
    detect,
    net_dev_path,
    read_net_dev,
    read_proc_cgroup,
    task_states,
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


def test_v1_cadvisor_series(v1: CgroupV1) -> None:
    rel = f"docker/{CID}"
    write(
        v1.root / "cpu" / rel / "cpu.stat",
        "nr_periods 40\nnr_throttled 7\nthrottled_time 350000000\n",
    )
    write(v1.root / "cpu" / rel / "cpu.shares", "512\n")
    write(v1.root / "memory" / rel / "memory.max_usage_in_bytes", "12582912\n")
    write(v1.root / "memory" / rel / "memory.failcnt", "3\n")
    write(v1.root / "memory" / rel / "memory.soft_limit_in_bytes", "33554432\n")
    write(v1.root / "memory" / rel / "memory.memsw.limit_in_bytes", "9223372036854771712\n")
    with (v1.root / "memory" / rel / "memory.stat").open("a") as stat:
        stat.write("total_swap 4096\ntotal_mapped_file 8192\npgfault 11\npgmajfault 1\n"
                   "total_pgfault 22\ntotal_pgmajfault 2\n")  # fmt: skip
    write(v1.root / "blkio" / rel / "blkio.throttle.io_serviced_recursive",
          "8:0 Read 5\n8:0 Write 6\n8:0 Total 11\nTotal 11\n")  # fmt: skip
    write(v1.root / "cpu" / rel / "tasks", "101\n102\n103\n")
    write(v1.proc_root / "101" / "stat", "101 (sh) S 1 ...\n")
    write(v1.proc_root / "102" / "stat", "102 (busy (x)) R 1 ...\n")  # a ')' in the name
    write(v1.proc_root / "103" / "stat", "103 (io) D 1 ...\n")
    files = v1.locate(CID, PID)
    stats = v1.read(files)
    assert (stats.cfs_periods, stats.cfs_throttled_periods) == (40, 7)
    assert stats.cfs_throttled_seconds == 0.35
    assert (stats.memory_swap_bytes, stats.memory_mapped_file_bytes) == (4096, 8192)
    assert (stats.memory_max_usage_bytes, stats.memory_failcnt) == (12582912, 3)
    assert stats.memory_failures == {
        ("pgfault", "container"): 11, ("pgfault", "hierarchy"): 22,
        ("pgmajfault", "container"): 1, ("pgmajfault", "hierarchy"): 2,
    }  # fmt: skip
    assert stats.io_devices == {"8:0": [1000, 2000, 5, 6], "8:16": [10, 20, 0, 0]}
    assert stats.spec == {
        "memory_limit": 67108864.0, "memory_reservation": 33554432.0, "memory_swap": 0.0,
        "cpu_shares": 512.0, "cpu_period": 100000.0, "cpu_quota": 50000.0,
    }  # fmt: skip
    assert task_states(files.paths["tasks"], v1.proc_root) == {
        "sleeping": 1, "running": 1, "uninterruptible": 1,
    }  # fmt: skip


def test_v2_cadvisor_series(v2: CgroupV2) -> None:
    rel = f"system.slice/docker-{CID}.scope"
    write(v2.root / rel / "cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
          "nr_periods 20\nnr_throttled 4\nthrottled_usec 250000\n")  # fmt: skip
    write(v2.root / rel / "cpu.max", "20000 100000\n")
    write(v2.root / rel / "cpu.weight", "100\n")
    write(v2.root / rel / "memory.peak", "25165824\n")
    write(v2.root / rel / "memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
    write(v2.root / rel / "memory.swap.current", "8192\n")
    write(v2.root / rel / "memory.swap.max", "max\n")
    write(v2.root / rel / "memory.low", "16777216\n")
    with (v2.root / rel / "memory.stat").open("a") as stat:
        stat.write("file_mapped 4096\npgfault 30\npgmajfault 3\n")
    stats = v2.read(v2.locate(CID, PID))
    assert (stats.cfs_periods, stats.cfs_throttled_periods, stats.cfs_throttled_seconds) == (
        20,
        4,
        0.25,
    )
    assert (stats.memory_max_usage_bytes, stats.memory_failcnt) == (25165824, 5)
    assert (stats.memory_swap_bytes, stats.memory_mapped_file_bytes) == (8192, 4096)
    assert stats.memory_failures[("pgmajfault", "hierarchy")] == 3
    assert stats.io_devices == {"8:0": [4096, 8192, 1, 2], "8:16": [4, 8, 1, 1]}
    assert stats.spec == {
        "memory_limit": 0.0, "memory_reservation": 16777216.0, "memory_swap": 0.0,
        "cpu_shares": 2597.0, "cpu_period": 100000.0, "cpu_quota": 20000.0,  # cAdvisor's map
    }  # fmt: skip


def test_root_cgroups(v1: CgroupV1, v2: CgroupV2) -> None:
    write(v1.root / "cpuacct" / "cpuacct.usage", "9000000000\n")
    write(v1.root / "cpuacct" / "cpuacct.stat", "user 1\nsystem 1\n")
    write(v1.root / "memory" / "memory.usage_in_bytes", "1073741824\n")
    write(v1.root / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    write(v1.root / "memory" / "memory.stat", "total_inactive_file 0\n")
    assert v1.read(v1.root_files()).cpu_seconds == 9.0
    write(v2.root / "cpu.stat", "usage_usec 7000000\n")
    write(v2.root / "memory.stat", "anon 100\nfile 50\ninactive_file 10\n")
    root = v2.read(v2.root_files())  # no memory.current at the v2 root: anon + file
    assert (root.cpu_seconds, root.memory_usage_bytes, root.memory_working_set_bytes) == (
        7.0,
        150,
        140,
    )


def test_kept_open_files_are_read_again_from_the_start_within_the_budget(tmp_path: Path) -> None:
    usage, stat = tmp_path / "usage", tmp_path / "stat"
    usage.write_text("100\n")
    stat.write_text("user 1\n")
    budget = DescriptorBudget(1)
    files = CgroupFiles({"usage": str(usage), "stat": str(stat), "none": ""}, budget=budget)
    assert files.read("usage") == "100\n"
    with usage.open("r+") as f:  # in place, as the kernel changes a cgroup file
        f.write("250\n")
    assert files.read("usage") == "250\n"  # the same descriptor, read from offset 0
    assert (files.kept_open, budget.used) == (1, 1)
    assert files.read("stat") == "user 1\n"  # past the budget: opened for the read
    assert (files.kept_open, budget.used) == (1, 1)
    with pytest.raises(FileNotFoundError):
        files.read("none")
    assert files.optional_int("none") is None
    files.close()
    assert (files.kept_open, budget.used) == (0, 0)
    usage.unlink()
    with pytest.raises(FileNotFoundError):  # closed: no old value from a kept descriptor
        files.read("usage")


def test_a_descriptor_that_fails_is_replaced_by_a_fresh_open(tmp_path: Path) -> None:
    path = tmp_path / "memory.usage_in_bytes"
    path.write_text("7\n")
    budget = DescriptorBudget(4)
    files = CgroupFiles({"memory_usage": str(path)}, budget=budget)
    assert files.read("memory_usage") == "7\n"
    os.close(files._open[str(path)])  # as a removed cgroup's file fails (ENODEV)
    path.write_text("8\n")
    assert files.read("memory_usage") == "8\n"
    assert (files.kept_open, budget.used) == (1, 1)
    files.close()


def test_the_budget_raises_the_soft_limit_and_takes_half() -> None:
    import resource

    budget = DescriptorBudget.for_this_process()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == hard or hard == resource.RLIM_INFINITY
    assert budget.limit == int((soft if soft != resource.RLIM_INFINITY else 1 << 16) * 0.5)
    # one budget for the process: every reader in it shares the half
    assert DescriptorBudget.for_this_process() is budget
