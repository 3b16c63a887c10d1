"""The state file as a dependency: still the file at its path, and writable, every second.

`DecisionStore.check` does the work (a heartbeat write; a deleted file written back from
the open copy on the next check; a replaced one adopted). While it fails, `/readyz` names
`state` with why, `ebbflow_dependency_up{dependency="state"}` is 0, and the catalog lets no
action be taken: nothing is done that could not be recorded. Writes refused meanwhile (the
outcome of an action already under way) wait in the store's backlog and are written first
once it works (`ebbflow_state_writes_waiting`). Bound: the state shows in
`/readyz` within one `interval` (1 s) of the fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ebbflow.metrics import Desc
from ebbflow.model import Sample
from ebbflow.state import DecisionStore

ERRORS = Desc(
    "ebbflow_state_errors_total",
    "Reads and writes the state file refused (no action is taken while it refuses).",
    "counter",
)
WAITING = Desc(
    "ebbflow_state_writes_waiting",
    "Writes the state file refused, kept in order until it works again.",
    "gauge",
)
DROPPED = Desc(
    "ebbflow_state_writes_dropped_total",
    "Refused writes dropped because the backlog was full (its oldest first).",
    "counter",
)


class StateWatch:
    name = "state"

    def __init__(self, store: DecisionStore, interval: float = 1.0) -> None:
        self.store = store
        self.interval = interval

    def problem(self) -> str | None:
        return self.store.problem

    def dependencies(self) -> dict[str, str | None]:
        return {"state": self.store.problem}

    async def run(self) -> None:
        while True:
            self.store.check()
            await asyncio.sleep(self.interval)

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield ERRORS.sample(self.store.errors, now)
        yield WAITING.sample(len(self.store.backlog), now)
        yield DROPPED.sample(self.store.dropped, now)
