"""The running containers, as announced on the bus by the containers input.

Label-driven inputs (probes, app scrapes) use this instead of asking Docker themselves:
one discovery, one event stream, one inspect cache for the whole process.
"""

from __future__ import annotations

from collections.abc import Callable

from ebbflow.bus import Bus, Subscription
from ebbflow.model import ContainerEvent, ContainerEventKind, ContainerInfo

ChangeHook = Callable[[ContainerInfo, bool], None]  # (container, running now)


class ContainerWatch:
    def __init__(self, bus: Bus, name: str, on_change: ChangeHook | None = None) -> None:
        self.subscription: Subscription = bus.subscribe(name, ContainerEvent, capacity=4096)
        self.running: dict[str, ContainerInfo] = {}
        self.on_change = on_change

    def apply(self, event: ContainerEvent) -> None:
        info = event.container
        if event.kind in (ContainerEventKind.PRESENT, ContainerEventKind.START):
            self.running[info.id] = info
            if self.on_change:
                self.on_change(info, True)
        elif (
            event.kind in (ContainerEventKind.DIE, ContainerEventKind.DESTROY)
            and self.running.pop(info.id, None) is not None
            and self.on_change
        ):
            self.on_change(info, False)

    def drain(self) -> None:
        """Apply every event waiting in the queue, without blocking."""
        while (event := self.subscription.get_nowait()) is not None:
            if isinstance(event, ContainerEvent):
                self.apply(event)

    async def follow(self) -> None:
        """Apply events as they come, until the bus closes."""
        async for event in self.subscription:
            if isinstance(event, ContainerEvent):
                self.apply(event)
