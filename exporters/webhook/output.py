"""The alert webhook output: events → alerts → groups → every target.

Alerts are grouped by `group_by` labels: a group's first alert waits `group_wait` for
others, then the group goes out as one notification. A state alert (policy invalid,
container unhealthy) that was already sent with the same status is not sent again within
`repeat_interval`; one-off events (decisions, failed actions) are never merged away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from ebbflow.bus import Bus
from ebbflow.metrics import Desc
from ebbflow.model import (
    ActionResult,
    Decision,
    HealingStep,
    HealthChange,
    NodeHealthChange,
    PolicyProblem,
    Sample,
    ServiceFight,
    ServiceRetired,
)

from .alerts import Alert, alert_for, notification
from .config import WebhookConfig
from .delivery import Notification, TargetQueue

GroupLabels = tuple[tuple[str, str], ...]

TARGET_UP = Desc(
    "ebbflow_webhook_up", "1 while the webhook target's last delivery succeeded.", "gauge",
    ("target",),
)  # fmt: skip
QUEUE = Desc(
    "ebbflow_webhook_queue", "Notifications waiting for a webhook target.", "gauge", ("target",)
)
SENT = Desc(
    "ebbflow_webhook_sent_total", "Notifications a webhook target accepted.", "counter",
    ("target",),
)  # fmt: skip
RETRIES = Desc(
    "ebbflow_webhook_retries_total", "Failed deliveries to a webhook target that were retried.",
    "counter", ("target",),
)  # fmt: skip
DROPPED = Desc(
    "ebbflow_webhook_dropped_total", "Notifications a webhook target did not get, by reason.",
    "counter", ("reason", "target"),
)  # fmt: skip
DEDUPLICATED = Desc(
    "ebbflow_webhook_deduplicated_total",
    "State alerts not sent again within repeat_interval.",
    "counter",
)


@dataclass
class PendingGroup:
    since: float
    alerts: dict[str, Alert] = field(default_factory=dict)  # fingerprint (or event id) → alert


class WebhookOutput:
    name = "webhook"

    def __init__(
        self, bus: Bus, config: WebhookConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.clock = clock
        self.subscription = bus.subscribe(
            "webhook",
            Decision,
            ActionResult,
            PolicyProblem,
            ServiceRetired,
            ServiceFight,
            HealthChange,
            HealingStep,
            NodeHealthChange,
            capacity=10_000,
        )
        self.targets = [TargetQueue(target, config, clock) for target in config.targets]
        self.pending: dict[GroupLabels, PendingGroup] = {}
        self.last_sent: dict[str, tuple[str, float]] = {}  # fingerprint → (status, when)
        self.deduplicated = 0
        self._events = 0
        self._wake = asyncio.Event()

    def accept(self, alert: Alert) -> None:
        now = self.clock()
        if not alert.event:
            previous = self.last_sent.get(alert.fingerprint)
            if previous is None and alert.resolved:
                return  # nothing was announced: nothing to resolve
            if (
                previous is not None
                and previous[0] == alert.status
                and now - previous[1] < self.config.repeat_interval
            ):
                self.deduplicated += 1
                return
        group = tuple((key, alert.labels.get(key, "")) for key in self.config.group_by)
        pending = self.pending.get(group)
        if pending is None:
            pending = self.pending[group] = PendingGroup(now)
        if alert.event:
            self._events += 1
            pending.alerts[f"event-{self._events}"] = alert
        else:
            pending.alerts[alert.fingerprint] = alert  # a newer status replaces the older
        self._wake.set()

    def flush_due(self, force: bool = False) -> None:
        now = self.clock()
        for group, pending in list(self.pending.items()):
            if force or now - pending.since >= self.config.group_wait:
                del self.pending[group]
                alerts = list(pending.alerts.values())
                for alert in alerts:
                    if not alert.event:
                        self.last_sent[alert.fingerprint] = (alert.status, now)
                message = Notification(
                    notification(self.config.receiver, dict(group), alerts),
                    [a.alertmanager() for a in alerts],
                )
                for target in self.targets:
                    target.put(message)

    async def _intake(self) -> None:
        async for event in self.subscription:
            alert = alert_for(event, self.config.event_ttl, self.config.dry_run_alerts)
            if alert is not None:
                self.accept(alert)

    async def _grouping(self) -> None:
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
            oldest = min(p.since for p in self.pending.values())
            await asyncio.sleep(max(0.0, oldest + self.config.group_wait - self.clock()))
            self.flush_due()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._intake())
                    group.create_task(self._grouping())
                    for target in self.targets:
                        group.create_task(target.run(session))
            finally:
                await asyncio.shield(self._last_words(session))

    async def _last_words(self, session: aiohttp.ClientSession) -> None:
        """At shutdown, pending groups go out now, one try each (a few seconds at most)."""
        self.flush_due(force=True)
        for target in self.targets:
            while target.queue:
                try:
                    async with asyncio.timeout(min(2.0, self.config.timeout)):
                        await target.send(session, target.body(target.queue[0]))
                except Exception:
                    target.dropped["shutdown"] += len(target.queue)
                    target.queue.clear()
                    break
                target.queue.popleft()
                target.sent += 1

    def health_problem(self) -> str | None:
        """A target that cannot be delivered to is a dependency down: notifications wait
        in its queue (they are not lost) and `/readyz` says so until one goes through."""
        down = [
            f"{t.target.name}: cannot deliver since {self.clock() - (t.failing_since or 0):.0f}s "
            f"({len(t.queue)} waiting): {t.last_error}"
            for t in self.targets
            if not t.up
        ]
        return "; ".join(down) or None

    def dependencies(self) -> dict[str, str | None]:
        return {
            f"webhook {t.target.name}": None
            if t.up
            else f"cannot deliver since {self.clock() - (t.failing_since or 0):.0f}s "
            f"({len(t.queue)} waiting): {t.last_error}"
            for t in self.targets
        }

    def telemetry(self, now: float) -> Iterable[Sample]:
        for target in self.targets:
            name = target.target.name
            yield TARGET_UP.sample(float(target.up), now, name)
            yield QUEUE.sample(len(target.queue), now, name)
            yield SENT.sample(target.sent, now, name)
            yield RETRIES.sample(target.retries, now, name)
            for reason in ("rejected", "queue_full", "shutdown"):
                yield DROPPED.sample(target.dropped[reason], now, reason, name)
        yield DEDUPLICATED.sample(self.deduplicated, now)
