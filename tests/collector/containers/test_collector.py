"""The containers input over a fixture tree: rates, labels, and what is never exported."""

import dataclasses
from types import MappingProxyType

from ebbflow.bus import Bus
from ebbflow.collector.containers.collector import ContainerInput, HostRoots
from ebbflow.discovery import Inventory
from ebbflow.docker_api import DockerHandle
from ebbflow.model import ContainerInfo, SampleBatch
from ebbflow.nodes import Nodes

from .test_cgroups import CID, NET_DEV, PID, CgroupV1, v1  # noqa: F401  (fixture)


def make_input(v1: CgroupV1, clock: object) -> ContainerInput:  # noqa: F811
    bus = Bus()
    collector = ContainerInput(
        bus,
        Inventory(Nodes([DockerHandle("unix:///nonexistent")]), bus, clock),  # type: ignore[arg-type]
        1.0,
        1.0,
        clock,  # type: ignore[arg-type]
        roots=HostRoots(cgroup=v1.root, proc=v1.proc_root),
    )
    return collector


INFO = ContainerInfo(
    id=CID,
    name="shop_web_1",
    image="img:1",
    pid=PID,
    started_at=1234.0,
    labels=MappingProxyType(
        {
            "com.docker.compose.project": "shop",
            "com.docker.compose.service": "web",
            "secret.token": "hunter2",
        }
    ),
)


def test_cpu_percent_is_of_the_limit(v1: CgroupV1, clock) -> None:  # noqa: F811
    collector = make_input(v1, clock)
    first = {s.name: s for s in collector.read_all([INFO])}
    assert "ebbflow_container_cpu_percent" not in first  # no rate from one reading
    usage = v1.root / "cpuacct" / f"docker/{CID}" / "cpuacct.usage"
    usage.write_text(str(2_500_000_000 + 250_000_000))  # +0.25 s of CPU
    clock.advance(1.0)
    second = {s.name: s for s in collector.read_all([INFO])}
    # 0.25 s per second against a 0.5-core quota is 50%
    assert second["ebbflow_container_cpu_percent"].value == 50.0
    assert second["container_cpu_usage_seconds_total"].value == 2.75
    assert second["container_cpu_usage_seconds_total"].kind == "counter"
    assert second["ebbflow_container_memory_percent"].value == 100 * (10485760 - 2097152) / 67108864


def test_labels_are_cadvisor_style_and_never_wholesale(v1: CgroupV1, clock) -> None:  # noqa: F811
    samples = make_input(v1, clock).read_all([INFO])
    labels = dict(next(s for s in samples if s.name == "container_memory_usage_bytes").labels)
    assert labels == {
        "id": f"/docker/{CID}",
        "name": "shop_web_1",
        "image": "img:1",
        "container_label_com_docker_compose_project": "shop",
        "container_label_com_docker_compose_service": "web",
    }
    assert not any("hunter2" in v for s in samples for _, v in s.labels)
    net = [s for s in samples if s.name == "container_network_receive_bytes_total"]
    assert [(s.label("interface"), s.value) for s in net] == [("eth0", 5000)]


def test_host_network_has_no_container_network_series(v1: CgroupV1, clock) -> None:  # noqa: F811
    host = ContainerInfo(id=CID, name="h", image="i", pid=PID, network_mode="host")
    samples = make_input(v1, clock).read_all([host])
    assert not [s for s in samples if s.name.startswith("container_network_")]


def test_a_vanished_container_is_counted_not_fatal(v1: CgroupV1, clock) -> None:  # noqa: F811
    collector = make_input(v1, clock)
    ghost = ContainerInfo(id="f" * 64, name="ghost", image="i", pid=999999)
    samples = collector.read_all([ghost, INFO])
    assert collector.read_errors == 1
    assert {s.label("name") for s in samples if s.label("id") not in ("", "/")} == {"shop_web_1"}


def test_only_the_labels_the_operator_names_are_exported(v1: CgroupV1, clock) -> None:  # noqa: F811
    plain = make_input(v1, clock).read_all([INFO])
    assert not any("secret" in k for s in plain for k, _ in s.labels)
    chosen = make_input(v1, clock)
    chosen.extra_labels = ("secret.token", "org.label-schema.group")  # the second is absent
    usage = next(s for s in chosen.read_all([INFO]) if s.name == "container_memory_usage_bytes")
    assert usage.label("container_label_secret_token") == "hunter2"
    assert usage.label("container_label_com_docker_compose_service") == "web"
    assert "container_label_org_label_schema_group" not in dict(usage.labels)


def test_the_network_file_is_kept_open_until_the_process_changes(v1: CgroupV1, clock) -> None:  # noqa: F811
    """/proc/PID/net/dev stays open like the cgroup files (a kept descriptor keeps reading
    the namespace it was opened in); a restart is a new process, so the old one is let go
    and the new one read."""
    collector = make_input(v1, clock)

    def received(info: ContainerInfo) -> list[float]:
        samples = collector.read_all([info])
        return [s.value for s in samples if s.name == "container_network_receive_bytes_total"
                and s.label("name") == "shop_web_1"]  # fmt: skip

    assert received(INFO) == [5000]
    watched = collector.watched[CID]
    old = str(v1.proc_root / str(PID) / "net" / "dev")
    assert watched.net_dev == old and old in watched.files._open
    kept = watched.files.kept_open
    with open(old, "r+") as f:  # in place, as the kernel's counters move
        f.write(NET_DEV.replace("5000", "6000"))
    assert received(INFO) == [6000]  # the same descriptor, read from offset 0
    assert watched.files.kept_open == kept
    restarted = PID + 1
    (v1.proc_root / str(restarted) / "net").mkdir(parents=True)
    (v1.proc_root / str(restarted) / "net" / "dev").write_text(NET_DEV.replace("5000", "7"))
    assert received(dataclasses.replace(INFO, pid=restarted)) == [7]
    assert old not in watched.files._open and watched.files.kept_open == kept
    collector.read_all([])  # gone: every descriptor back, the network file's too
    assert watched.files.kept_open == 0


def test_a_network_file_that_cannot_be_read_is_counted_and_logged_once(
    v1: CgroupV1,  # noqa: F811
    clock,
    caplog,
) -> None:
    """A torn or missing /proc/PID/net/dev costs that container's network series only:
    counted every cycle, logged when it starts failing and when it is read again."""
    collector = make_input(v1, clock)

    def errors() -> dict[str, float]:
        return {
            s.label("part"): s.value
            for s in collector.telemetry(clock())
            if s.name == "ebbflow_containers_part_read_errors_total"
        }

    def network(samples: list) -> list:
        return [s for s in samples if s.name.startswith("container_network_")
                and s.label("name") == "shop_web_1"]  # fmt: skip

    host_before = errors()["host_network"]
    path = v1.proc_root / str(PID) / "net" / "dev"
    assert network(collector.read_all([INFO]))
    collector.read_all([])  # let its kept descriptor go: the next read opens the path
    path.write_text("Inter-|   Receive\n face |bytes\n  eth0: 12 not-a-number\n")  # torn
    with caplog.at_level("INFO", logger="ebbflow.collector.containers"):
        for _ in range(3):
            clock.advance(1.0)
            samples = collector.read_all([INFO])
            assert not network(samples)
            assert any(s.name == "container_memory_usage_bytes" for s in samples)  # the rest
        assert errors()["network"] == 3
        path.write_text(NET_DEV)
        clock.advance(1.0)
        assert [s.value for s in network(collector.read_all([INFO]))
                if s.name == "container_network_receive_bytes_total"] == [5000]  # fmt: skip
    assert errors()["network"] == 3
    warned = [r for r in caplog.records if "cannot read the network of shop_web_1" in r.message]
    assert len(warned) == 1 and warned[0].levelname == "WARNING"
    assert "ValueError" in warned[0].message
    assert sum("the network of shop_web_1 is read again" in r.message
               for r in caplog.records) == 1  # fmt: skip
    # this tree has no /proc/1/net/dev: the host's network fails every cycle, apart
    assert host_before == 0 and errors()["host_network"] == 6
    kept = {s.name: s.value for s in collector.telemetry(clock())}
    assert 0 < kept["ebbflow_containers_kept_files"] <= kept["ebbflow_containers_kept_files_limit"]


def test_a_cycle_says_which_run_of_its_samples_is_about_which_container(
    v1: CgroupV1,  # noqa: F811
    clock,
) -> None:
    collector = make_input(v1, clock)
    batches = collector.bus.subscribe("test", SampleBatch)
    ghost = ContainerInfo(id="f" * 64, name="ghost", image="i", pid=999999)
    samples = collector.read_all([ghost, INFO])
    [(name, stop)] = samples.containers  # none for the vanished one
    assert name == "shop_web_1" and stop > 20
    assert {s.label("name") for s in samples[:stop]} == {"shop_web_1"}
    # then the host's (machine_*, and id="/" where its root cgroup is read): no container's
    assert samples[stop:] and {s.label("name") for s in samples[stop:]} == {""}
    collector.publish(samples)
    batch = batches.get_nowait()
    assert isinstance(batch, SampleBatch) and batch.containers == (("shop_web_1", stop),)
    assert batch.samples == tuple(samples)
