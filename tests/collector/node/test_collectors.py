"""Each node collector over a fixture tree: the values node_exporter computes from the same
files (formats from the kernel's documentation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebbflow.collector.node import (
    diskstats,
    netclass,
    netdev,
    netstat,
    procnet,
    sockstat,
    stat,
    system,
    vmstat,
)
from ebbflow.collector.node.source import Paths, Row


def tree(root: Path, files: dict[str, str]) -> Paths:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Paths(root / "proc", root / "sys", root / "etc", root / "run")


def values(rows: list[Row]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(r.name, tuple(sorted(r.labels.items()))): r.value for r in rows}


def test_stat(tmp_path: Path) -> None:
    paths = tree(tmp_path, {"proc/stat": (
        "cpu  10 0 5 100 1 0 0 0 0 0\n"
        "cpu0 200 10 50 1000 5 1 2 3 40 4\n"
        "intr 12345 1 2 3\nctxt 999\nbtime 1700000000\nprocesses 42\n"
        "procs_running 3\nprocs_blocked 1\nsoftirq 1 2 3\n"
    )})  # fmt: skip
    got = values(stat.cpu(paths))
    assert not any(k[0].startswith("node_cpu") for k in values(stat.collect(paths)))
    got |= values(stat.collect(paths))
    hz = stat.USER_HZ
    assert got[("node_cpu_seconds_total", (("cpu", "0"), ("mode", "user")))] == 200 / hz
    assert got[("node_cpu_seconds_total", (("cpu", "0"), ("mode", "steal")))] == 3 / hz
    assert got[("node_cpu_guest_seconds_total", (("cpu", "0"), ("mode", "user")))] == 40 / hz
    assert got[("node_cpu_guest_seconds_total", (("cpu", "0"), ("mode", "nice")))] == 4 / hz
    assert not any(k[0] == "node_cpu_seconds_total" and ("cpu", "") in k[1] for k in got)
    assert got[("node_intr_total", ())] == 12345
    assert got[("node_context_switches_total", ())] == 999
    assert got[("node_boot_time_seconds", ())] == 1_700_000_000
    assert got[("node_forks_total", ())] == 42
    assert (got[("node_procs_running", ())], got[("node_procs_blocked", ())]) == (3, 1)


def test_vmstat_default_fields(tmp_path: Path) -> None:
    paths = tree(tmp_path, {"proc/vmstat": "nr_free_pages 5\npgfault 10\npgmajfault 2\n"
                            "pswpin 1\noom_kill 0\npgpgin 7\nworkingset_refault 9\n"})  # fmt: skip
    got = {r.name: r.value for r in vmstat.collect(paths)}
    assert got == {
        "node_vmstat_pgfault": 10, "node_vmstat_pgmajfault": 2, "node_vmstat_pswpin": 1,
        "node_vmstat_oom_kill": 0, "node_vmstat_pgpgin": 7,
    }  # fmt: skip


def test_netstat_snmp_and_snmp6(tmp_path: Path) -> None:
    paths = tree(tmp_path, {
        "proc/net/netstat": "TcpExt: ListenDrops ListenOverflows Other\nTcpExt: 4 5 6\n",
        "proc/net/snmp": "Tcp: ActiveOpens CurrEstab MaxConn\nTcp: 7 8 -1\n"
                         "Udp: InDatagrams InErrors\nUdp: 9 1\n",
        "proc/net/snmp6": "Ip6InOctets 100\nUdp6InErrors 2\nIp6InReceives 3\n",
    })  # fmt: skip
    rows = netstat.collect(paths)
    got = {r.name: r.value for r in rows}
    assert got == {
        "node_netstat_TcpExt_ListenDrops": 4, "node_netstat_TcpExt_ListenOverflows": 5,
        "node_netstat_Tcp_ActiveOpens": 7, "node_netstat_Tcp_CurrEstab": 8,
        "node_netstat_Udp_InDatagrams": 9, "node_netstat_Udp_InErrors": 1,
        "node_netstat_Ip6_InOctets": 100, "node_netstat_Udp6_InErrors": 2,
    }  # fmt: skip
    help_of = {r.name: r.help for r in rows}
    assert help_of["node_netstat_TcpExt_ListenDrops"] == "Statistic TcpExtListenDrops."


def test_sockstat(tmp_path: Path) -> None:
    paths = tree(tmp_path, {
        "proc/net/sockstat": "sockets: used 100\nTCP: inuse 3 orphan 0 tw 1 alloc 4 mem 2\n"
                             "UDP: inuse 1 mem 3\n",
        "proc/net/sockstat6": "TCP6: inuse 2\nUDP6: inuse 1\n",
    })  # fmt: skip
    got = {r.name: r.value for r in sockstat.collect(paths)}
    assert got["node_sockstat_sockets_used"] == 100
    assert got["node_sockstat_TCP_mem_bytes"] == 2 * sockstat.PAGE_SIZE
    assert got["node_sockstat_UDP_mem"] == 3 and got["node_sockstat_TCP6_inuse"] == 2


def test_netclass_and_netdev(tmp_path: Path) -> None:
    paths = tree(tmp_path, {
        "sys/class/net/eth0/mtu": "1500\n", "sys/class/net/eth0/speed": "1000\n",
        "sys/class/net/eth0/operstate": "up\n", "sys/class/net/eth0/flags": "0x1003\n",
        "sys/class/net/eth0/address": "02:42:ac:11:00:02\n",
        "sys/class/net/eth0/statistics/rx_nohandler": "7\n",
        "sys/class/net/lo/operstate": "unknown\n", "sys/class/net/lo/speed": "-1\n",
        "proc/net/dev": "Inter-|   Receive\n face |bytes\n"
                        "  eth0: 100 2 0 1 0 0 0 3 200 4 0 0 0 5 6 0\n",
    })  # fmt: skip
    got = values(netclass.collect(paths))
    eth0 = (("device", "eth0"),)
    assert got[("node_network_mtu_bytes", eth0)] == 1500
    assert got[("node_network_speed_bytes", eth0)] == 125_000_000
    assert got[("node_network_speed_bytes", (("device", "lo"),))] == -125_000  # as node_exporter
    assert got[("node_network_flags", eth0)] == 0x1003
    assert (
        got[("node_network_up", eth0)] == 1 and got[("node_network_up", (("device", "lo"),))] == 0
    )
    assert ("node_network_carrier", eth0) not in got  # unreadable: left out
    assert ("node_network_receive_bytes_total", (("device", "lo"),)) not in values(
        netdev.collect(tree(tmp_path, {"sys/class/net/lo/flags": "0x9\n", "proc/net/dev": (
            "Inter-|   Receive\n face |bytes\n"
            "    lo: 1 2 0 1 0 0 0 3 200 4 0 0 0 5 6 0\n"
            "  eth0: 100 2 0 1 0 0 0 3 200 4 0 0 0 5 6 0\n")}))
    )  # fmt: skip  # loopback: left out, as node_exporter 1.5 leaves it
    dev = values(netdev.collect(paths))
    assert dev[("node_network_receive_bytes_total", eth0)] == 100
    assert dev[("node_network_receive_multicast_total", eth0)] == 3
    assert dev[("node_network_transmit_colls_total", eth0)] == 5
    assert dev[("node_network_transmit_carrier_total", eth0)] == 6
    assert dev[("node_network_receive_nohandler_total", eth0)] == 7


def test_diskstats_fields_exclusions_and_info(tmp_path: Path) -> None:
    paths = tree(tmp_path, {
        "proc/diskstats": "   8 0 sda 10 1 80 5000 20 2 160 7000 1 9000 12000 3 0 24 100 6 50\n"
                          "   8 1 sda1 1 0 8 0 0 0 0 0 0 0 0\n"
                          "   7 0 loop0 1 0 2 0 0 0 0 0 0 0 0\n",
        "run/udev/data/b8:0": "E:ID_MODEL=Disk\nE:ID_SERIAL_SHORT=S123\nE:ID_PATH=pci-0\n",
    })  # fmt: skip
    got = values(diskstats.collect(paths))
    sda = (("device", "sda"),)
    assert got[("node_disk_read_bytes_total", sda)] == 80 * 512
    assert got[("node_disk_read_time_seconds_total", sda)] == 5.0
    assert got[("node_disk_io_time_weighted_seconds_total", sda)] == 12.0
    assert got[("node_disk_discarded_sectors_total", sda)] == 24
    assert got[("node_disk_flush_requests_total", sda)] == 6
    assert got[("node_disk_flush_requests_time_seconds_total", sda)] == 0.05
    assert not any(("device", "sda1") in k[1] or ("device", "loop0") in k[1] for k in got)
    info = [k for k in got if k[0] == "node_disk_info"]
    assert dict(info[0][1]) == {
        "device": "sda", "major": "8", "minor": "0", "model": "Disk", "serial": "S123",
        "path": "pci-0", "wwn": "", "revision": "",
    }  # fmt: skip


def test_small_system_collectors(tmp_path: Path) -> None:
    paths = tree(tmp_path, {
        "etc/os-release": 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
                          'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        "proc/sys/fs/file-nr": "621\t0\t2466097\n",
        "proc/sys/kernel/random/entropy_avail": "256\n",
        "proc/sys/kernel/random/poolsize": "256\n",
    })  # fmt: skip
    os_rows = system.os_release(paths)
    assert os_rows[0].labels["pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert len(os_rows[0].labels) == 12
    assert os_rows[1].value == 12 and os_rows[1].labels == {
        "id": "debian",
        "id_like": "",
        "name": "Debian GNU/Linux",
    }
    assert {r.name: r.value for r in system.filefd(paths)} == {
        "node_filefd_allocated": 621, "node_filefd_maximum": 2466097,
    }  # fmt: skip
    assert {r.name for r in system.entropy(paths)} == {
        "node_entropy_available_bits", "node_entropy_pool_size_bits",
    }  # fmt: skip
    assert system.selinux(paths)[0].value == 0


def test_procnet_collectors(tmp_path: Path) -> None:
    paths = tree(tmp_path, {
        "proc/pressure/cpu": "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n",
        "proc/pressure/io": "some avg10=0 avg60=0 avg300=0 total=2000000\n"
                            "full avg10=0 avg60=0 avg300=0 total=500000\n",
        "proc/net/softnet_stat": "0000000a 00000001 00000002 0 0\n000000ff 0 0 0 0\n",
        "proc/net/udp": "  sl  local_address rem_address   st tx_queue:rx_queue ...\n"
                        "   0: 0100007F:1F90 00000000:0000 07 00000010:00000020 00:0\n",
        "proc/net/arp": "IP address HW type Flags HW address Mask Device\n"
                        "10.0.0.1 0x1 0x2 aa:bb:cc:dd:ee:ff * eth0\n"
                        "10.0.0.2 0x1 0x2 aa:bb:cc:dd:ee:fe * eth0\n",
        "proc/sys/net/netfilter/nf_conntrack_count": "12\n",
        "proc/sys/net/netfilter/nf_conntrack_max": "65536\n",
        "proc/net/stat/nf_conntrack": "entries searched found new invalid ignore delete "
                                      "delete_list insert insert_failed drop early_drop\n"
                                      "0000000c 0 00000003 0 00000001 0 0 0 00000002 0 0 0\n"
                                      "0000000c 0 00000001 0 0 0 0 0 0 0 0 0\n",
    })  # fmt: skip
    pressure = {r.name: r.value for r in procnet.pressure(paths)}
    assert pressure == {
        "node_pressure_cpu_waiting_seconds_total": 1.5,
        "node_pressure_io_waiting_seconds_total": 2.0,
        "node_pressure_io_stalled_seconds_total": 0.5,
    }
    softnet = values(procnet.softnet(paths))
    assert softnet[("node_softnet_processed_total", (("cpu", "1"),))] == 255
    assert softnet[("node_softnet_dropped_total", (("cpu", "0"),))] == 1
    queues = values(procnet.udp_queues(paths))
    assert queues[("node_udp_queues", (("ip", "v4"), ("queue", "tx")))] == 16
    assert queues[("node_udp_queues", (("ip", "v4"), ("queue", "rx")))] == 32
    assert values(procnet.arp(paths)) == {("node_arp_entries", (("device", "eth0"),)): 2}
    conntrack = {r.name: r.value for r in procnet.conntrack(paths)}
    assert conntrack["node_nf_conntrack_entries"] == 12
    assert conntrack["node_nf_conntrack_stat_found"] == 4  # summed over CPUs
    assert conntrack["node_nf_conntrack_stat_insert"] == 2


def test_a_failing_collector_costs_only_its_own_series(tmp_path: Path) -> None:
    from ebbflow.bus import Bus
    from ebbflow.collector.node import NodeConfig, NodeInput

    config = NodeConfig(collectors=("vmstat", "arp"), proc_root=tmp_path / "proc")
    tree(tmp_path, {"proc/vmstat": "pgfault 1\n", "proc/meminfo": "MemTotal: 1 kB\n"})
    node = NodeInput(Bus(), config, 1.0, lambda: 0.0)
    got = values([Row(s.name, s.value, s.kind, s.help, dict(s.labels)) for s in node.read()])
    assert got[("node_vmstat_pgfault", ())] == 1
    assert got[("node_scrape_collector_success", (("collector", "arp"),))] == 0
    assert got[("node_scrape_collector_success", (("collector", "vmstat"),))] == 1
    assert got[("node_scrape_collector_success", (("collector", "meminfo"),))] == 1
    # no /proc/net/arp, /proc/stat, /proc/loadavg nor mount table in the tree
    assert node.failing == {"arp", "cpu", "loadavg", "filesystem"}


def test_filesystems_as_node_exporter_1_5_picks_them(tmp_path: Path) -> None:
    from ebbflow.collector.node import filesystem

    paths = tree(tmp_path, {"proc/1/mounts": (
        "/dev/vda / ext4 rw,relatime 0 0\n"
        "/dev/vda / ext4 rw,relatime 0 0\n"  # listed twice: one series
        "tmpfs /tmp tmpfs rw 0 0\n"  # tmpfs is kept
        "tmpfs /dev/shm tmpfs rw 0 0\n"  # under /dev: left out
        "nsfs /run/docker/netns/default nsfs rw 0 0\n"  # nsfs: left out
        "overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n"
        "/dev/vdb /mnt/with\\040space ext4 ro,relatime 0 0\n"
        "/dev/vdc /gone ext4 rw 0 0\n"  # statfs fails: device_error 1
    )})  # fmt: skip
    paths = Paths(paths.proc, paths.sys, paths.etc, paths.run)
    got = values(filesystem.collect(paths))
    errors = {dict(k[1])["mountpoint"]: v for k, v in got.items() if k[0].endswith("device_error")}
    assert errors == {"/": 0, "/tmp": 0, "/mnt/with space": 1, "/gone": 1}
    root = (("device", "/dev/vda"), ("fstype", "ext4"), ("mountpoint", "/"))
    assert got[("node_filesystem_readonly", root)] == 0
    assert got[("node_filesystem_size_bytes", root)] > 0
    # pid 1's table hidden (hidepid): this process's, as node_exporter falls back
    (tmp_path / "proc" / "1" / "mounts").unlink()
    (tmp_path / "proc" / "mounts").write_text("/dev/vda / ext4 ro 0 0\n")
    assert values(filesystem.collect(paths))[("node_filesystem_readonly", root)] == 1
    (tmp_path / "proc" / "mounts").write_text("torn\n")
    with pytest.raises(ValueError, match="malformed mount point information: 'torn'"):
        filesystem.collect(paths)


def test_unknown_collectors_are_named() -> None:
    from pydantic import ValidationError

    from ebbflow.collector.node import NodeConfig

    with pytest.raises(ValidationError, match=r"collectors\n.*unknown \['cpufreqq'\]"):
        NodeConfig(collectors=("cpufreqq",))
    with pytest.raises(ValidationError, match=r"mount_points_exclude\n.*not a regular expr"):
        NodeConfig(mount_points_exclude="^/(dev")
