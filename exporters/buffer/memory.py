"""The memory half of an output's buffer: samples in arrival order, within a bound; what
goes past the bound spills to the disk spool (or is dropped and counted without one)."""

from __future__ import annotations

import collections
from collections.abc import Iterable

from ebbflow.model import Sample

from .disk import Spool


class MemoryBuffer:
    def __init__(self, max_samples: int, batch_size: int) -> None:
        self.max_samples = max_samples
        self.batch_size = batch_size
        self._samples: collections.deque[Sample] = collections.deque()

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, samples: Iterable[Sample], spool: Spool | None) -> dict[str, int]:
        """Take the samples in; spill the oldest, a batch at a time, past the bound. Returns
        what could be held nowhere, by reason."""
        self._samples.extend(samples)
        dropped: dict[str, int] = {}
        overflow = len(self._samples) - self.max_samples
        while overflow > 0:
            oldest = self.take()
            overflow -= len(oldest)
            if spool is None:
                dropped["buffer_full"] = dropped.get("buffer_full", 0) + len(oldest)
            elif not spool.append(oldest):
                dropped["spool_full"] = dropped.get("spool_full", 0) + len(oldest)
        return dropped

    def take(self) -> list[Sample]:
        """The oldest batch, out of the buffer."""
        size = min(self.batch_size, len(self._samples))
        return [self._samples.popleft() for _ in range(size)]

    def put_back(self, batch: list[Sample]) -> None:
        """A batch taken and not delivered goes back to the front, in order."""
        self._samples.extendleft(reversed(batch))

    def spill(self, spool: Spool) -> bool:
        """Everything to the spool, a batch at a time; False once the spool is full."""
        while self._samples:
            size = min(self.batch_size, len(self._samples))
            if not spool.append([self._samples[i] for i in range(size)]):
                return False
            for _ in range(size):
                self._samples.popleft()
        return True

    def clear(self) -> None:
        self._samples.clear()
