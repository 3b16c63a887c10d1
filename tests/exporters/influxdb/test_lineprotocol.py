from ebbflow.exporters.influxdb.lineprotocol import serialize
from ebbflow.model import Sample, labels_of


def test_escaping_timestamps_and_non_finite_values() -> None:
    text = serialize(
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
