"""The line-protocol conformance suite (lineprotocol_cases.py) against the parser, and the
fast path against the full scanner."""

from __future__ import annotations

import math

import pytest

from ebbflow.collector.udp.lineprotocol import (
    LinePoint,
    LineProtocolError,
    _plain,
    _Scanner,
    parse_lines,
)

from .lineprotocol_cases import CASES, Case, Point

assert len(CASES) >= 150, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_conformance(case: Case) -> None:
    got = list(parse_lines(case.text, case.precision))  # type: ignore[arg-type]
    assert len(got) == len(case.outcomes), got
    for entry, expected in zip(got, case.outcomes, strict=True):
        if isinstance(expected, Point):
            assert isinstance(entry, LinePoint), entry
            assert entry.measurement == expected.measurement
            assert entry.tags == expected.tags
            assert entry.fields == expected.fields
            assert [type(v) for v in entry.fields.values()] == [
                type(v) for v in expected.fields.values()
            ]
            if expected.timestamp is None:
                assert entry.timestamp is None
            else:
                assert entry.timestamp == pytest.approx(expected.timestamp, abs=1e-6)
        else:
            assert isinstance(entry, LineProtocolError), entry
            assert expected.reason in str(entry), str(entry)
            assert str(entry).startswith("column ")


@pytest.mark.parametrize(
    "case", [c for c in CASES if "\\" not in c.text and '"' not in c.text], ids=lambda c: c.id
)
def test_the_fast_path_agrees_with_the_scanner(case: Case) -> None:
    """Whatever the fast path accepts, the scanner gives the same; what it refuses it
    leaves to the scanner."""
    for line in case.text.split("\n"):
        line = line.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fast = _plain(line, 1)
        if fast is None:
            continue
        slow, _ = _Scanner(line, 0, 1).entry()
        assert fast == slow


def test_an_error_names_its_column() -> None:
    (error,) = parse_lines("cpu,host=a value=nan")
    assert isinstance(error, LineProtocolError)
    assert error.column == 18 and str(error).startswith("column 18: field 'value'")


def test_the_quick_float_path_takes_exactly_what_the_grammar_allows() -> None:
    """`_number` hands most floats to float() directly; on random tokens (seeded) it
    accepts exactly what the FLOAT grammar does."""
    import random

    from ebbflow.collector.udp.lineprotocol import FLOAT, _number

    rng = random.Random(7)
    alphabet = "0123456789.-eE+x_ \t\x0b\x1cinfINFatyé"
    for _ in range(50_000):
        token = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        if token[-1] in "iu" or token in ("t", "T", "f", "F"):
            continue
        grammar = FLOAT.match(token) is not None and math.isfinite(float(token))
        assert (_number(token) is not None) == grammar, repr(token)
