from datetime import UTC, datetime

from ebbflow.docker_api import container_info, parse_docker_time


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
