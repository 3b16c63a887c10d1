"""The event stream's lines, bounded: a line of any length never breaks the stream, and
what a skipped line says of its container is still handed on."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ebbflow.config import DockerLimits
from ebbflow.docker_api import bounded_labels
from ebbflow.docker_events import EventLines, StreamCounts

CID = "ab" * 32


def line(action: str, labels: dict[str, str] | None = None) -> bytes:
    event = {
        "status": action, "id": CID, "from": "img", "Type": "container", "Action": action,
        "Actor": {"ID": CID, "Attributes": labels or {"name": "web-1"}},
    }  # fmt: skip
    return json.dumps(event).encode() + b"\n"


def test_a_megabyte_line_is_skipped_counted_and_its_container_still_named() -> None:
    counts = StreamCounts()
    lines = EventLines(65536, counts)
    stream = line("start") + line("start", {"huge": "x" * 1_000_000}) + b"not json\n" + line("die")
    got = []
    for at in range(0, len(stream), 4096):  # as the socket hands it over
        got += lines.feed(stream[at : at + 4096])
    assert [(e["status"], e.get("truncated", False)) for e in got] == [
        ("start", False),
        ("start", True),
        ("die", False),
    ]
    assert got[1]["id"] == CID
    assert counts.skipped == {"too_long": 1, "not_json": 1}


def test_a_long_line_ending_within_its_first_chunk_is_skipped_too() -> None:
    counts = StreamCounts()
    lines = EventLines(4096, counts)
    got = lines.feed(line("destroy", {"k": "v" * 10_000}) + line("stop"))
    assert [(e["status"], e.get("truncated", False)) for e in got] == [
        ("destroy", True),
        ("stop", False),
    ]
    assert counts.skipped["too_long"] == 1


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=3000), max_size=30))
def test_any_bytes_never_raise_and_memory_stays_bounded(chunks: list[bytes]) -> None:
    lines = EventLines(1024, StreamCounts())
    for chunk in chunks:
        for event in lines.feed(chunk):
            assert isinstance(event, dict)
        assert len(lines._line) <= 1024 + 3000 and len(lines._skipping or b"") <= 4096


def test_labels_past_their_bounds_are_left_out_and_named() -> None:
    limits = DockerLimits(max_label_bytes=300, max_labels_bytes=1024)
    labels = {"small": "1", "big": "x" * 400, **{f"k{n}": "y" * 250 for n in range(6)}}
    kept, errors = bounded_labels(labels, limits)
    assert "big" not in kept and "small" in kept
    assert sum(len(k) + len(v) for k, v in kept.items()) <= 1024
    assert errors[0] == (
        "big: label of 403 bytes, over the 300-byte bound (docker.limits.max_label_bytes): left out"
    )
    assert any("past 1024 bytes of labels in all" in e for e in errors)
