import pytest

from ebbflow.collector.probes.spec import parse_probe


def test_seed_and_native_labels() -> None:
    spec, errors = parse_probe(
        {
            "aliyun.probe.url": "http://container:8080/health",
            "aliyun.probe.initial_delay_seconds": "5",
            "aliyun.probe.timeout_seconds": "2",
            "ebbflow.health.interval": "3",
            "ebbflow.health.expected_status": "200-204,301",
            "ebbflow.health.body_regex": "ok|ready",
            "ebbflow.health.failure_threshold": "2",
        }
    )
    assert errors == () and spec is not None
    assert (spec.kind, spec.initial_delay, spec.timeout, spec.interval) == ("http", 5, 2, 3)
    assert spec.target("127.0.0.1") == "http://127.0.0.1:8080/health"
    assert spec.status_ok(204) and spec.status_ok(301) and not spec.status_ok(302)
    assert spec.body_matches("all ready") and not spec.body_matches("down")


def test_tcp_and_cmd() -> None:
    tcp, _ = parse_probe({"aliyun.probe.url": "tcp://container:5432"})
    cmd, _ = parse_probe({"aliyun.probe.cmd": "sh -c 'test -f /ready'"})
    assert tcp is not None and tcp.kind == "tcp" and tcp.target("10.0.0.1") == "tcp://10.0.0.1:5432"
    assert cmd is not None and cmd.cmd == ("sh", "-c", "test -f /ready")


def test_no_probe_labels_no_probe() -> None:
    assert parse_probe({"com.docker.compose.service": "web"}) == (None, ())


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"aliyun.probe.url": "ftp://container:21"}, "aliyun.probe.url: the scheme must be"),
        ({"aliyun.probe.url": "tcp://container"}, "needs a host and, for tcp, a port"),
        (
            {"aliyun.probe.url": "http://container:1/", "aliyun.probe.timeout_seconds": "-1"},
            "aliyun.probe.timeout_seconds: Input should be greater than 0",
        ),
        (
            {"ebbflow.health.expected_status": "2xx", "aliyun.probe.url": "http://c:1/"},
            "ebbflow.health.expected_status",
        ),
        ({"aliyun.probe.url": "http://c:1/", "aliyun.probe.cmd": "true"}, "exactly one"),
        (
            {"aliyun.probe.url": "http://c:1/", "ebbflow.health.intervall": "3"},
            "ebbflow.health.intervall: unknown key",
        ),
    ],
)
def test_errors_name_the_label(labels: dict[str, str], expected: str) -> None:
    spec, errors = parse_probe(labels)
    assert spec is None
    assert any(expected in e for e in errors), errors


def test_synonyms_that_disagree_are_an_error() -> None:
    same, errors = parse_probe(
        {
            "aliyun.probe.timeout_seconds": "2",
            "ebbflow.health.timeout": "2",
            "aliyun.probe.url": "http://c:1/",
        }
    )
    assert same is not None and errors == ()
    spec, errors = parse_probe(
        {
            "aliyun.probe.timeout_seconds": "2",
            "ebbflow.health.timeout": "5",
            "aliyun.probe.url": "http://c:1/",
        }
    )
    assert spec is None
    assert errors == (
        "ebbflow.health.timeout: conflicts with aliyun.probe.timeout_seconds ('5' vs '2')",
    )


def test_a_url_probe_on_a_container_without_network_is_a_named_error() -> None:
    from types import MappingProxyType

    from ebbflow.bus import Bus
    from ebbflow.collector.probes import ProbeInput
    from ebbflow.docker_api import DockerHandle
    from ebbflow.model import ContainerInfo
    from ebbflow.nodes import Nodes

    probes = ProbeInput(Bus(), Nodes([DockerHandle("tcp://127.0.0.1:9")]), lambda: 0.0)
    labels = {"aliyun.probe.url": "http://container:8080/health"}
    isolated = ContainerInfo("c1", "web-1", "img", MappingProxyType(labels), network_mode="none")
    assert probes._spec(isolated) is None
    assert probes.config_errors.by_container["web-1"] == (
        "aliyun.probe.url: the container has no network address (network none): a URL probe "
        "cannot reach it; probe it with aliyun.probe.cmd instead",
    )
    reachable = ContainerInfo(
        "c2", "web-2", "img", MappingProxyType(labels), network_mode="host", address="127.0.0.1"
    )
    assert probes._spec(reachable) is not None
