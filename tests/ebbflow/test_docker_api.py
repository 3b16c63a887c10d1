import re
from datetime import UTC, datetime

import pytest

from ebbflow.config import ConfigError
from ebbflow.docker_api import DockerHandle, container_info, parse_docker_time


def test_docker_times_with_nanoseconds_and_zero() -> None:
    expected = datetime(2026, 11, 21, 20, 40, 1, 123456, tzinfo=UTC).timestamp()
    assert parse_docker_time("2026-11-21T20:40:01.123456789Z") == expected
    assert parse_docker_time("2026-11-21T22:40:01.123456789+02:00") == expected
    assert parse_docker_time("0001-01-01T00:00:00Z") == 0.0


def test_container_info_reads_limits_either_way() -> None:
    base = {
        "Id": "a" * 64,
        "Name": "/web_1",
        "Config": {"Image": "img", "Labels": {"k": "v"}},
        "State": {"Running": True, "Pid": 42, "StartedAt": "0001-01-01T00:00:00Z"},
    }
    nano = container_info({**base, "HostConfig": {"NanoCpus": 500_000_000, "Memory": 64 << 20}})
    quota = container_info({**base, "HostConfig": {"CpuQuota": 150_000, "CpuPeriod": 100_000}})
    none = container_info({**base, "HostConfig": {"NetworkMode": "host"}})
    assert (nano.name, nano.pid, nano.labels["k"]) == ("web_1", 42, "v")
    assert nano.cpu_limit_cores == 0.5 and nano.memory_limit_bytes == 64 << 20
    assert quota.cpu_limit_cores == 1.5
    assert none.cpu_limit_cores is None and none.memory_limit_bytes is None
    assert none.network_mode == "host"


@pytest.mark.parametrize(
    ("address", "read_as"),
    [
        ("/var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("unix:///run/d.sock", "unix:///run/d.sock"),
        ("tcp://127.0.0.1:2375", "tcp://127.0.0.1:2375"),
    ],
)
def test_an_engine_address_without_a_scheme_is_a_socket_path(
    address: str, read_as: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", address)
    assert DockerHandle().host == read_as
    assert DockerHandle(address).host == read_as


@pytest.mark.parametrize("address", ["127.0.0.1:2375", "docker.sock", "ftp://x", "unix://"])
def test_an_engine_address_that_is_none_is_refused_naming_where(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", address)
    with pytest.raises(
        ConfigError, match=re.escape(f"DOCKER_HOST={address!r} is not an engine address")
    ):
        DockerHandle()
    with pytest.raises(ConfigError, match=r"docker\.nodes\.n2="):
        DockerHandle(address, node="n2")
