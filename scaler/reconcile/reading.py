"""Reading what someone else's stops and removals meant (intent.py holds them): a
redeploy, a manual scale-in, a retirement, a fight, or, when the engine went away, an
outage. What was read goes into the audit log, so a restart follows it too."""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from types import MappingProxyType

from ebbflow.config import ReconcileConfig
from ebbflow.context import DecisionContext
from ebbflow.controls import ControlsWatch, paused
from ebbflow.model import (
    ContainerInfo,
    Decision,
    DecisionOrigin,
    EngineConnection,
    OperatorControls,
    ServiceFight,
    ServiceKey,
)
from ebbflow.services import format_service_key

from .desired import Tracked
from .intent import Held, Removals

log = logging.getLogger("ebbflow.scaler.reconcile")


class IntentReader:
    def __init__(
        self,
        ctx: DecisionContext,
        config: ReconcileConfig,
        count: Callable[[Tracked], int],
        retire: Callable[[Tracked, str], None],
        controls: ControlsWatch | None = None,
    ) -> None:
        self.bus = ctx.bus
        self.catalog = ctx.catalog
        self.store = ctx.store
        self.clock = ctx.clock
        self.dry_run = ctx.dry_run
        self.config = config
        self.count = count  # replicas that count toward the desired count
        self.retire = retire  # the reconciler leaves a retired service alone
        self.controls = controls  # pauses a service in a fight
        self.removals: collections.defaultdict[ServiceKey, Removals] = collections.defaultdict(
            Removals
        )
        # services paused for a fight → whether the operator's controls showed the pause yet
        self.fights: dict[ServiceKey, bool] = {}

    def started(
        self, tracked: Tracked, info: ContainerInfo, ours: bool, new: bool, when: float
    ) -> None:
        self.removals[tracked.key].started(info.name, ours, new, when)

    def hold(self, tracked: Tracked, info: ContainerInfo, removed: bool, when: float) -> bool:
        """Someone else stopped or removed a replica: held to be read; False when it was
        read already."""
        removal = Held(
            info.name,
            "removed" if removed else "stopped",
            when,
            info.node,
            self.catalog.session(info.node),
        )
        return self.removals[tracked.key].hold(info.id, removal, tracked.configuration)

    def redeployed(self, tracked: Tracked) -> bool:
        """A redeploy ends a hold at once: its removals were part of it."""
        if self.removals[tracked.key].redeployed(tracked.configuration):
            self.read_held(tracked, redeployed=True)
            return True
        return False

    def forget(self, key: ServiceKey) -> None:
        self.removals.pop(key, None)

    def outage(self, lost: EngineConnection, services: dict[ServiceKey, Tracked]) -> None:
        """The engine's stream broke: what was stopped or removed on it just before is what
        an engine's shutdown does, not anyone's intent. Recorded as an outage; the desired
        count stays, and the replicas are restored when the engine is back."""
        for key, removals in list(self.removals.items()):
            voided = removals.void(lambda held: held.node == lost.node)
            tracked = services.get(key)
            if not voided or tracked is None:
                continue
            desired = tracked.desired()
            left = self.count(tracked)
            names = ", ".join(held.name for held in voided)
            why = (
                f"{len(voided)} replica(s) ({names}) stopped as the engine"
                f"{' of node ' + lost.node if lost.node else ''} went away ({lost.reason}): "
                f"an outage, not an operator; desired count stays {desired}"
            )
            log.warning("service %s: %s", key, why)
            self.record_history(tracked, left + len(voided), left, why, "outage")
            tracked.off_since = None

    def read_held(self, tracked: Tracked, redeployed: bool) -> bool:
        """What the replicas someone else stopped or removed meant; True when it was the
        service's retirement."""
        removals = self.removals[tracked.key]
        held = removals.take()
        tracked.tries, tracked.reported = 0, None  # someone else acted: a new mismatch
        names = ", ".join(removal.name for removal in held)
        if redeployed:
            log.info(
                "service %s: redeployed (configuration %s): %s %s by it; the desired count "
                "stays %s",
                tracked.key,
                tracked.configuration or "unchanged",
                names,
                "were" if len(held) > 1 else "was",
                tracked.desired(),
            )
            return False
        fought = removals.fought(held, self.config.fight_window)
        if fought is not None:
            self._fight(tracked, fought)
            return False
        return self._by_the_operator(tracked, held[-1].name, held[-1].how)

    def _fight(self, tracked: Tracked, name: str) -> None:
        key = format_service_key(tracked.key)
        why = (
            f"{name} was removed by someone other than ebbflow right after ebbflow created "
            "it, twice: ebbflow stops re-adding replicas and pauses the service (`ebbflow "
            f"resume {key}` manages it again; see 'With docker compose' in the README)"
        )
        log.warning("service %s: %s", tracked.key, why)
        if self.controls is not None:
            self.controls.pause(key)
        else:
            self.store.set_paused(key, True, self.clock())
        self.fights[tracked.key] = False
        self.bus.publish(ServiceFight(tracked.key, why, self.clock()))

    def end_fights(self, controls: OperatorControls) -> None:
        """A service paused for a fight and then resumed: the fight is over. Only once the
        operator's controls showed the pause, so an announcement from before it ends
        nothing."""
        for key, seen_paused in list(self.fights.items()):
            if paused(controls.paused, key):
                self.fights[key] = True
            elif seen_paused:
                del self.fights[key]
                log.info("service %s: resumed by the operator; the fight is over", key)
                self.bus.publish(
                    ServiceFight(key, "resumed by the operator", self.clock(), fighting=False)
                )

    def _by_the_operator(self, tracked: Tracked, name: str, how: str) -> bool:
        """Someone else stopped or removed a replica, and it was no redeploy: what they
        meant, not a failure. True when it retired the service."""
        service = self.catalog.get(tracked.key)
        left = service.count if service is not None else 0
        desired = tracked.desired()
        if left == 0:
            why = f"every replica was {how} by someone other than ebbflow"
            self._record_operator(tracked, desired or 0, 0, f"retired: {why}")
            self.retire(tracked, why)
            self.forget(tracked.key)
            return True
        if tracked.policy is None or desired is None or left >= desired:
            return False
        if left < tracked.policy.min_replicas:
            if not tracked.below_min_said:
                tracked.below_min_said = True
                log.warning(
                    "service %s: %s was %s by hand, leaving %d replicas, below its "
                    "min_replicas %d: ebbflow brings it back to %d",
                    tracked.key,
                    name,
                    how,
                    left,
                    tracked.policy.min_replicas,
                    tracked.policy.min_replicas,
                )
            return False
        log.info(
            "service %s: %s was %s by hand: a manual scale-in, desired count now %d",
            tracked.key,
            name,
            how,
            left,
        )
        tracked.operator = left
        self._record_operator(tracked, desired, left, f"{name} {how} by hand")
        return False

    def _record_operator(self, tracked: Tracked, was: int, to: int, what: str) -> None:
        """What someone else did, in the audit log: ebbflow follows it, and a restart too."""
        self.record_history(tracked, was, to, what, "operator")

    def record_history(
        self, tracked: Tracked, was: int, to: int, what: str, origin: DecisionOrigin
    ) -> None:
        """What happened to a service without ebbflow acting, in the audit log."""
        decision = Decision(
            service=tracked.key,
            from_replicas=was,
            to_replicas=to,
            reason=f"{tracked.key.name}: {was}→{to}, {what}",
            timestamp=self.clock(),
            inputs=MappingProxyType({"replicas": to}),
            dry_run=self.dry_run,
            origin=origin,
        )
        self.store.record(
            decision,
            ("ok", "done by the operator; ebbflow follows")
            if origin == "operator"
            else ("outage", "lost to an outage; the desired count restores it"),
        )

    def holding(self, tracked: Tracked, now: float) -> bool:
        """Removals by someone else wait for the redeploy window, then are read (which may
        retire the service); those an outage explains are dropped. True while waiting."""
        removals = self.removals[tracked.key]
        if removals.void(self._crossed_an_outage):  # a loss not announced (missed event)
            tracked.off_since = None
        if not removals.held:
            return False
        if not removals.due(now, self.config.redeploy_window):
            tracked.off_since = now  # nothing is re-added while it may be a redeploy
            return True
        return self.read_held(tracked, redeployed=False)

    def _crossed_an_outage(self, held: Held) -> bool:
        """Seen in another connection than the current one, or the engine is away now:
        no evidence of intent."""
        return held.session != self.catalog.session(held.node) or not self.catalog.connected(
            held.node
        )
