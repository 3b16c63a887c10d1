import pytest

from ebbflow.collector.udp.parsers import (
    looks_like_statsd,
    metric_name,
    parse_line_protocol,
    parse_statsd,
)


def test_line_protocol_full() -> None:
    p = parse_line_protocol(
        r'app\ q,host=a,path=/x\,y latency=12.5,hits=3i,ok=t,msg="a, b=c" 1700000000000000000'
    )
    assert p.measurement == "app q"
    assert p.tags == {"host": "a", "path": "/x,y"}
    assert p.fields == {"latency": 12.5, "hits": 3.0, "ok": 1.0}  # the string is skipped
    assert p.timestamp == 1_700_000_000.0


def test_line_protocol_without_tags_or_timestamp() -> None:
    p = parse_line_protocol("queue depth=7")
    assert (p.measurement, p.tags, p.fields, p.timestamp) == ("queue", {}, {"depth": 7.0}, None)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("justameasurement", "expected"),
        ("m,tag value=1", "bad tag"),
        ("m value=abc", "'abc' is not a value"),
        ("m value=1 notatime", "timestamp"),
        ('m s="unterminated', "unterminated"),
        ("m =1", "bad field"),
    ],
)
def test_line_protocol_errors(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_line_protocol(line)


def test_statsd_kinds() -> None:
    c = parse_statsd("jobs.done:3|c|@0.5|#queue:mail,env:prod")
    assert (c.name, c.value, c.kind, c.sample_rate, c.tags) == (
        "jobs.done",
        3.0,
        "c",
        0.5,
        {"queue": "mail", "env": "prod"},
    )
    assert parse_statsd("temp:-2|g").delta
    assert not parse_statsd("temp:21|g").delta
    assert parse_statsd("req:320|ms").kind == "ms"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("nocolon|c", "expected"),
        ("a:1", "missing"),
        ("a:1|x", "unsupported type"),
        ("a:one|c", "not a number"),
        ("a:1|c|@2", "sample rate"),
    ],
)
def test_statsd_errors(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_statsd(line)


def test_telling_the_formats_apart_and_names() -> None:
    assert looks_like_statsd("a.b:1|c")
    assert not looks_like_statsd("cpu,host=a value=1")
    assert not looks_like_statsd("cpu value=1 1700000000")
    assert metric_name("jobs.done-ok") == "jobs_done_ok"
    assert metric_name("9lives") == "_9lives"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("queue depth=nan", "'nan' is not a value"),
        ("queue depth=inf", "'inf' is not a value"),
        ("queue depth=-Infinity", "is not a value"),
        ("queue depth=1e400", "'1e400' is not a finite number"),
        ("queue depth=" + "1" * 400, "is not a finite number"),
        ("queue depth=" + "1" * 400 + "i", "is not an integer"),
        ("queue depth=9223372036854775808i", "out of int64 range"),
        ("queue depth=-1u", "out of uint64 range"),
        ("queue depth=18446744073709551616u", "out of uint64 range"),
        ("queue depth=1_000", "is not a value"),
        ("queue depth=+5i", "is not an integer"),
        ("queue depth=1 99999999999999999999", "not an int64"),
    ],
)
def test_line_protocol_numbers_are_finite_and_in_range(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_line_protocol(line)


def test_line_protocol_range_edges_are_accepted() -> None:
    edges = "m a=9223372036854775807i,b=-9223372036854775808i,c=18446744073709551615u,d=-1.5e308"
    assert parse_line_protocol(edges).fields == {
        "a": 9223372036854775807.0,
        "b": -9223372036854775808.0,
        "c": 18446744073709551615.0,
        "d": -1.5e308,
    }


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e400"])
def test_statsd_values_are_finite(raw: str) -> None:
    with pytest.raises(ValueError, match="not a number, or not finite"):
        parse_statsd(f"depth:{raw}|g")
    with pytest.raises(ValueError, match="sample rate"):
        parse_statsd("hits:1|c|@nan")
