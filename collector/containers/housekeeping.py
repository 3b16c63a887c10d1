"""Dynamic housekeeping, as cAdvisor's: how often each container is read.

A container whose readings did not change since its last read (an idle one) is read again
after twice its last interval, up to `max_interval`; one whose readings changed goes back
to every cycle at once. A new container, one a policy reads (the core's `Attention`), and
one carrying a label of `every_cycle_labels` are read every cycle. cAdvisor's
`--max_housekeeping_interval` is 60 s; ebbflow's default (config.py) is 15 s where the
process decides itself, and 8 s on an agent: under the 10 s a replica's value stays fresh
for the rules (rules/tracking.py STALE_AFTER), so a decider never reads an idle replica of
an agent as unseen, even for a policy only it knows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ebbflow.model import ContainerInfo

JITTER = 0.1  # each container's next read is spread by ±10 %, so idle ones do not clump


@dataclass
class Schedule:
    """One container's: when it is due, its interval now, what its last read said."""

    due: float = 0.0
    interval: float = 0.0
    signature: tuple[float, ...] | None = None


class Housekeeping:
    def __init__(
        self,
        max_interval: float = 0.0,
        every_cycle_labels: tuple[str, ...] = (),
        closely: Callable[[str], bool] = lambda _: False,
    ) -> None:
        self.max_interval = max_interval
        self.every_cycle_labels = every_cycle_labels
        self.closely = closely

    @property
    def dynamic(self) -> bool:
        return self.max_interval > 0

    def due(self, info: ContainerInfo, schedule: Schedule | None, now: float) -> bool:
        """Read this container this cycle?"""
        return (
            schedule is None
            or now >= schedule.due
            or self.closely(info.id)
            or (
                bool(self.every_cycle_labels)  # asked of every idle container every cycle
                and any(label in info.labels for label in self.every_cycle_labels)
            )
        )

    def next(
        self, schedule: Schedule, signature: tuple[float, ...], base: float, now: float
    ) -> None:
        """After a read: back off when nothing changed, back to `base` when it did."""
        if schedule.signature is not None and signature == schedule.signature:
            schedule.interval = min(max(schedule.interval, base) * 2, self.max_interval)
        else:
            schedule.interval = base
        schedule.signature = signature
        # due half a cycle early: the cycle nearest the time reads it (at `base`, each one)
        spread = random.uniform(1 - JITTER, 1 + JITTER)
        schedule.due = now + schedule.interval * spread - base / 2

    def idle(self, schedule: Schedule, base: float) -> bool:
        return schedule.interval > base
