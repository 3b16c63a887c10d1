import pytest

from ebbflow.collector.udp.names import NameOwners, metric_name
from ebbflow.collector.udp.statsd import (
    ServiceCheck,
    StatsdEvent,
    StatsdPoint,
    looks_like_statsd,
    parse_statsd,
)


def point(line: str) -> StatsdPoint:
    item = parse_statsd(line)
    assert isinstance(item, StatsdPoint)
    return item


def test_statsd_kinds() -> None:
    c = point("jobs.done:3|c|@0.5|#queue:mail,env:prod")
    assert (c.name, c.values, c.kind, c.sample_rate, c.tags) == (
        "jobs.done",
        (3.0,),
        "c",
        0.5,
        {"queue": "mail", "env": "prod"},
    )
    assert point("temp:-2|g").delta and point("temp:+2|g").delta
    assert not point("temp:21|g").delta
    assert point("req:320|ms").kind == "ms"
    assert point("users:bob|s").members == ("bob",)


def test_dogstatsd_fields() -> None:
    d = point("lat:1:2.5:3|d|#a:b,canary|T1700000000|c:abc123")
    assert d.values == (1.0, 2.5, 3.0)
    assert d.tags == {"a": "b", "canary": "true"}  # a valueless tag stays a tag
    assert (d.timestamp, d.container_id) == (1_700_000_000.0, "abc123")
    assert point("x:1|c|e:future-field|card:low").values == (1.0,)  # later fields: skipped


def test_service_checks_and_events() -> None:
    check = parse_statsd("_sc|db.up|2|d:1700000000|h:web1|#env:prod|m:down: no route | x")
    assert check == ServiceCheck("db.up", 2, {"env": "prod"}, "web1", "down: no route | x", 1.7e9)
    event = parse_statsd("_e{5,9}:Title|text body|t:error|p:low|#x:y")
    assert event == StatsdEvent("Title", "text body", "error", "low", {"x": "y"})
    multibyte = parse_statsd("_e{2,3}:\u00e9|a|b")  # lengths are UTF-8 bytes
    assert isinstance(multibyte, StatsdEvent) and (multibyte.title, multibyte.text) == ("é", "a|b")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("nocolon|c", "expected"),
        ("a:1", "missing"),
        ("a:1|x", "unsupported type"),
        ("a:one|c", "not a number"),
        ("a:1|c|@2", "sample rate"),
        ("a:1|c|@nan", "sample rate"),
        ("a:1|c|bogus", "unknown field"),
        ("a:nan|g", "not a number"),
        ("a:inf|g", "not a number"),
        ("a:1e400|g", "not finite"),
        ("a:|s", "needs a member"),
        ("a:1|c|Tsoon", "not Unix seconds"),
        ("_sc|x|7", "not 0, 1, 2 or 3"),
        ("_sc|x", "expected"),
        ("_e{10,2}:ab|cd", "not the lengths"),
        ("_e{x}:a|b", "expected"),
    ],
)
def test_statsd_errors(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_statsd(line)


def test_telling_the_formats_apart_and_names() -> None:
    assert looks_like_statsd("a.b:1|c")
    assert looks_like_statsd("a.b:1:2|d|#x:y")
    assert looks_like_statsd("_sc|x|0") and looks_like_statsd("_e{1,1}:a|b")
    assert not looks_like_statsd("cpu,host=a value=1")
    assert not looks_like_statsd("cpu value=1 1700000000")
    assert not looks_like_statsd("m,url=http://x/a|b v=1")  # a pipe in a tag
    assert not looks_like_statsd("m,u=a:1|c v=1")  # even one that spells a type
    assert metric_name("jobs.done-ok") == "jobs_done_ok"
    assert metric_name("9lives") == "_9lives"


def test_the_first_source_of_a_name_owns_it() -> None:
    owners = NameOwners(limit=10)
    assert owners.claim("cpu_usage_idle", "cpu/usage_idle") is None
    assert owners.claim("cpu_usage_idle", "cpu/usage_idle") is None
    assert owners.claim("cpu_usage_idle", "cpu_usage/idle") == "cpu/usage_idle"
    assert owners.collisions == 1
    owners.keep_only(set())
    assert owners.claim("cpu_usage_idle", "cpu_usage/idle") is None  # forgotten with its series
