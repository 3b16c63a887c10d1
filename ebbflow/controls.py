"""The operator's word from the command line: `ebbflow pause|resume|forget SERVICE`.

The commands reach the running instance through its control socket
(ebbflow/control_channel.py), which records the word in the state file and announces it on
the bus at once (`OperatorControls`), so the rule engine, the reconciler and the healer
leave paused services alone and drop forgotten counts. The state file is read every second
too, so what was written there while no instance listened is taken as well.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from ebbflow.bus import Bus
from ebbflow.control_channel import ControlServer, socket_path
from ebbflow.metrics import Desc
from ebbflow.model import OperatorControls, Sample, ServiceKey
from ebbflow.services import names_service, parse_service_key
from ebbflow.state import DecisionStore

log = logging.getLogger("ebbflow.controls")


PAUSED = Desc(
    "ebbflow_service_paused",
    "1 while the operator has paused a service (`ebbflow pause`): no actions.",
    "gauge",
    ("service",),
)


def paused(controls: frozenset[str], service: ServiceKey) -> bool:
    return any(names_service(text, service) for text in controls)


class ControlsWatch:
    name = "controls"

    def __init__(
        self,
        bus: Bus,
        store: DecisionStore,
        clock: Callable[[], float],
        interval: float = 1.0,
        report: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.report = report  # what `ebbflow status` asks: /readyz's body
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

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request of the control socket."""
        verb = request.get("verb")
        service = str(request.get("service", ""))[:512]
        answer: dict[str, Any] = {"ok": True, "pid": os.getpid()}
        if verb == "status" and self.report is not None:
            return answer | {"report": self.report()}
        if verb in ("pause", "resume") and service:
            self.store.set_paused(service, verb == "pause", self.clock())
        elif verb == "forget" and service:
            try:
                name = self.store.resolve(service)
            except LookupError as err:
                return {"ok": False, "error": str(err)}
            answer["dropped"] = self.store.forget(parse_service_key(name), service, self.clock())
            answer["service"] = name
        else:
            return {"ok": False, "error": f"unknown request {verb!r}"}
        if not self.store.writable:
            return {"ok": False, "error": f"not recorded: {self.store.problem}"}
        self.poll()  # announced now, not at the next tick
        return answer

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            if not self.store.memory:
                server = ControlServer(socket_path(self.store.path), self.handle)
                group.create_task(server.serve())
            while True:
                self.poll()
                await asyncio.sleep(self.interval)

    def telemetry(self, now: float) -> Iterable[Sample]:
        for name in sorted(self.paused):
            yield PAUSED.sample(1.0, now, name)
