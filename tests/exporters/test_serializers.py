import json

from ebbflow.exporters.serializers import json_lines, line_protocol
from ebbflow.model import Sample, labels_of


def test_escaping_timestamps_and_non_finite_values() -> None:
    text = line_protocol(
        [
            Sample(
                "cpu usage,x",
                1.5,
                labels_of({"name": "a b", "k=v": "c,d", "empty": ""}),
                1700000000.25,
            ),
            Sample("bad", float("nan"), (), 1.0),
            Sample("up", 1.0, (), 2.0),
        ]
    )
    assert text.split("\n") == [
        r"cpu\ usage\,x,k\=v=c\,d,name=a\ b value=1.5 1700000000250000000",
        "up value=1.0 2000000000",
    ]


def test_json_lines_in_telegrafs_shape() -> None:
    text = json_lines(
        [
            Sample("c_total", 3.0, labels_of({"name": 'a"b', "empty": ""}), 1.25, "counter"),
            Sample("bad", float("inf"), (), 1.0),
            Sample("up", 1.0, (), 2.0),
        ]
    )
    assert [json.loads(line) for line in text.split("\n")] == [
        {
            "name": "c_total",
            "tags": {"name": 'a"b'},
            "fields": {"value": 3.0},
            "timestamp": 1.25,
            "type": "counter",
        },
        {"name": "up", "tags": {}, "fields": {"value": 1.0}, "timestamp": 2.0, "type": "gauge"},
    ]
