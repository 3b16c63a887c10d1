"""The operator's word from the command line: `ebbflow pause|resume|forget SERVICE`.

The commands write to the state file; a running instance reads it every second and
announces what changed on the bus (`OperatorControls`), so the rule engine, the
reconciler and the healer leave paused services alone and drop forgotten counts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from ebbflow.bus import Bus
from ebbflow.model import OperatorControls, Sample, ServiceKey, labels_of
from ebbflow.services import names_service
from ebbflow.state import DecisionStore

log = logging.getLogger("ebbflow.controls")


def paused(controls: frozenset[str], service: ServiceKey) -> bool:
    return any(names_service(text, service) for text in controls)


class ControlsWatch:
    name = "controls"

    def __init__(
        self, bus: Bus, store: DecisionStore, clock: Callable[[], float], interval: float = 1.0
    ) -> None:
        self.bus = bus
        self.store = store
        self.clock = clock
        self.interval = interval
        self.paused: frozenset[str] = frozenset()
        # What was forgotten before this start is done: the decisions are gone already.
        self._forgotten = {name: when for name, _, when in store.controls() if when is not None}
        self._announced = False

    def poll(self) -> OperatorControls | None:
        rows = self.store.controls()
        now_paused = frozenset(name for name, is_paused, _ in rows if is_paused)
        forgotten = frozenset(
            name
            for name, _, when in rows
            if when is not None and when > self._forgotten.get(name, float("-inf"))
        )
        for name, _, when in rows:
            if when is not None:
                self._forgotten[name] = when
        if now_paused == self.paused and not forgotten and self._announced:
            return None
        for name in sorted(now_paused - self.paused):
            log.info("service %s paused: no actions until resumed", name)
        for name in sorted(self.paused - now_paused):
            log.info("service %s resumed", name)
        for name in sorted(forgotten):
            log.info("service %s forgotten: its decisions and desired count are dropped", name)
        self.paused, self._announced = now_paused, True
        event = OperatorControls(now_paused, forgotten, self.clock())
        self.bus.publish(event)
        return event

    def pause(self, service: str) -> None:
        """ebbflow's own pause (a fight): recorded as the operator's is, announced at once."""
        self.store.set_paused(service, True, self.clock())
        self.poll()

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self.interval)

    def telemetry(self, now: float) -> Iterable[Sample]:
        for name in sorted(self.paused):
            yield Sample(
                "ebbflow_service_paused",
                1.0,
                labels_of({"service": name}),
                now,
                "gauge",
                "1 while the operator has paused a service (`ebbflow pause`): no actions.",
            )
