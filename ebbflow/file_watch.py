"""Whether files an operator may rewrite while ebbflow runs (a web config, certificates)
changed and then held still: looked at once a second by their owner, a change is taken
once it held still for one look, so a rewrite under way (truncated, then written; a key,
then its certificate) is never read half done."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

CHECK_EVERY = 1.0  # seconds between an owner's looks

Stamp = tuple[tuple[str, int, int, int], ...]  # (path, inode, size, mtime in ns) per file


def stamp(files: Sequence[Path]) -> Stamp:
    stamps = []
    for file in files:
        try:
            st = os.stat(file)
        except OSError:
            stamps.append((str(file), -1, -1, -1))  # gone: its return is a change
        else:
            stamps.append((str(file), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(stamps)


class SettledChange:
    """`due()` is True once the files differ from those last taken and looked the same at
    the previous look; `retry` makes it True at every still look (a broken read is tried
    again). `taken()` records the files as now taken."""

    def __init__(self, files: Callable[[], Sequence[Path]]) -> None:
        self.files = files
        self.good = self.looked = stamp(files())

    def due(self, retry: bool = False) -> bool:
        now, looked = stamp(self.files()), self.looked
        self.looked = now
        if now == self.good and not retry:
            return False
        return now == looked

    def taken(self) -> Stamp:
        """The files as they are now are the ones in force; what they were before."""
        before = self.good
        self.good = self.looked = stamp(self.files())
        return before
