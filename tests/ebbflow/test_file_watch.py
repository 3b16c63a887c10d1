"""A change to files an operator rewrites is taken once it held still for a look."""

from __future__ import annotations

import os
from pathlib import Path

from ebbflow.file_watch import SettledChange


def write(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(tick * 10**9, tick * 10**9))


def test_taken_once_still_and_retried_while_broken(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "1", 1)
    write(b, "1", 1)
    change = SettledChange(lambda: [a, b])
    assert change.due() is False  # nothing changed
    write(a, "2", 2)
    assert change.due() is False  # changing
    write(b, "22", 2)  # the second file of a rewrite, a look later
    assert change.due() is False  # still changing
    assert change.due() is True  # held still for a look
    before = change.taken()
    assert before != change.good and change.due() is False
    assert change.due(retry=True) is True  # a read that failed is tried at every still look
    b.unlink()
    assert change.due() is False
    assert change.due() is True  # gone is a change too
