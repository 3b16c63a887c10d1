"""The Kafka input's decoding of what agents' Kafka output writes, and of what it must not
trust: each bad line costs itself, and each message has a bound."""

from __future__ import annotations

import pytest

from ebbflow.collector.kafka.decode import decode
from ebbflow.exporters.serializers import json_lines, line_protocol
from ebbflow.model import Sample, labels_of

SAMPLES = [
    Sample(
        "ebbflow_container_cpu_percent",
        42.5,
        labels_of({"name": "web-1", "service": "web"}),
        1700000000.25,
        "gauge",
    ),
    Sample("requests_total", 7.0, labels_of({"name": "a b,c=d"}), 1700000001.0, "counter"),
]


def test_line_protocol_and_json_lines_come_back_as_the_agent_sent_them() -> None:
    for text, kinds in ((line_protocol(SAMPLES), ["untyped"] * 2),
                        (json_lines(SAMPLES), ["gauge", "counter"])):  # fmt: skip
        got = decode(text.encode(), "auto", 100, now=0.0)
        assert got.bad_lines == 0
        assert [(s.name, s.value, s.labels) for s in got.samples] == [
            (s.name, s.value, s.labels) for s in SAMPLES
        ]
        assert [s.timestamp for s in got.samples] == pytest.approx(
            [s.timestamp for s in SAMPLES], abs=1e-6
        )
        assert [s.kind for s in got.samples] == kinds


def test_a_bad_line_costs_itself_and_names_why() -> None:
    text = "\n".join(["cpu,name=a value=1 1000000000", "cpu,name=b value=oops", "cpu value=2"])
    got = decode(text.encode(), "influx", 100, now=5.0)
    assert [(s.label("name"), s.value, s.timestamp) for s in got.samples] == [
        ("a", 1.0, 1.0),
        ("", 2.0, 5.0),  # no timestamp: the time it arrived
    ]
    assert got.bad_lines == 1 and "column" in got.first_error

    text = '{"name": "x", "fields": {"value": 1}, "timestamp": 1}\n{"name": "y"}\n[1]'
    got = decode(text.encode(), "json", 100, now=0.0)
    assert len(got.samples) == 1 and got.bad_lines == 2
    assert got.first_error.startswith("line 2: KeyError")

    got = decode(b'{"name": "x", "fields": {"value": true}, "timestamp": 1}', "auto", 100, 0.0)
    assert got.bad_lines == 1 and "fields.value must be a number" in got.first_error
    got = decode(b"cpu value=1\xff", "auto", 100, now=0.0)
    assert got.samples == [] and got.first_error == "not UTF-8 at byte 11"


def test_samples_past_the_bound_are_dropped_and_counted() -> None:
    text = "\n".join(f"m,i={i} value={i}" for i in range(10))
    got = decode(text.encode(), "influx", 4, now=0.0)
    assert [s.value for s in got.samples] == [0.0, 1.0, 2.0, 3.0] and got.truncated == 6
