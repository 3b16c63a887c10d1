"""What someone else's stops and removals of a service's replicas mean.

What someone else does is intent, not failure; but only evidence counts as intent. A stop
or removal is read as someone's only when the engine stayed connected from the event until
it is read: an engine's shutdown stops every container before its event stream ends, so a
removal held when the stream breaks is an outage (`void`), restored like any failure.

A replica stopped or removed by hand (not by ebbflow) is held for a redeploy window
first: when within it a replica not made by ebbflow starts, or the service's defining
configuration changes, it was a redeploy (compose removes what its file does not count and
recreates the rest) and the desired count stays; else, while others run, it is a manual
scale-in that the desired count follows, and with every replica gone the service is
retired. A replica ebbflow made that
someone else removes right after its creation, twice, is a fight.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Held:
    """A stop or removal by someone else, waiting to be read."""

    name: str
    how: str  # "stopped" | "removed"
    when: float
    node: str = ""
    session: int = 0  # the engine connection it was seen in


@dataclass
class Removals:
    """One service's removals by someone else, not read yet, and what tells a redeploy or
    a fight from a scale-in."""

    # By container id: a stop and the removal after it are one (compose renames between).
    held: dict[str, Held] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)  # held ids already read: their rm is no news
    configuration: str = ""  # the service's configuration when the first was held
    restarted: bool = False  # a replica not made by ebbflow started meanwhile
    made: dict[str, float] = field(default_factory=dict)  # ebbflow's replicas: when created
    quick: collections.Counter[str] = field(default_factory=collections.Counter)

    def hold(self, cid: str, removal: Held, configuration: str) -> bool:
        """Someone else stopped or removed a replica; False when it was read already (the
        removal after a stop that was read)."""
        if cid in self.read:
            if removal.how == "removed":
                self.read.discard(cid)
            return False
        if not self.held:
            self.configuration = configuration
            self.restarted = False
        earlier = self.held.pop(cid, None)
        if earlier is not None:  # a stop and the removal after it: one, from the stop's time
            removal = Held(earlier.name, removal.how, earlier.when, removal.node, earlier.session)
        self.held[cid] = removal
        return True

    def void(self, lost: Callable[[Held], bool]) -> list[Held]:
        """The held removals an outage explains: dropped, never read as intent."""
        voided = [cid for cid, held in self.held.items() if lost(held)]
        return [self.held.pop(cid) for cid in voided]

    def started(self, name: str, ours: bool, new: bool, when: float) -> None:
        """A replica started: ours (created, or created again under a name compose reuses)
        or a new one of someone else's while removals are held (a redeploy)."""
        if ours and (new or name not in self.made):
            self.made[name] = when
        elif self.held and new:
            self.restarted = True

    def redeployed(self, configuration: str) -> bool:
        return bool(self.held) and (self.restarted or configuration != self.configuration)

    def due(self, now: float, window: float) -> bool:
        """The oldest held removal waited the whole window."""
        return bool(self.held) and now - min(h.when for h in self.held.values()) >= window

    def take(self) -> list[Held]:
        """Every held removal, marked read."""
        self.read |= set(self.held)
        held, self.held = list(self.held.values()), {}
        return held

    def fought(self, held: list[Held], window: float) -> str | None:
        """The name of a replica ebbflow made that someone else removed right after its
        creation for the second time, if any."""
        for removal in held:
            made = self.made.get(removal.name)
            if made is not None and removal.when - made < window:
                self.quick[removal.name] += 1
                if self.quick[removal.name] >= 2:
                    self.quick.clear()
                    return removal.name
        return None
