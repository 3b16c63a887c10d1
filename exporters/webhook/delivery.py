"""One target's queue of notifications, sent in order, retried until delivered.

A receiver that is down for a while gets every notification once it is back; only a
permanent 4xx drops one (logged with the receiver's answer), and past `max_queued` the
oldest go first (counted).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..pipeline import SendError, http_error
from .config import WebhookConfig, WebhookTarget

log = logging.getLogger("ebbflow.exporters.webhook")
SIGNATURE_HEADER = "X-Ebbflow-Signature"
ANSWER_BYTES = 4096  # of a receiver's error answer: enough for its reason, never its whole body


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe and Slack sign:
    the time is signed with the body, so a receiver that rejects old timestamps cannot be
    fed a captured request again."""
    signed = str(timestamp).encode() + b"." + body
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: float = 300.0) -> bool:
    """What a receiver does (README: "Alert webhooks"): the signature matches and its time
    is within `tolerance` seconds of now."""
    fields = dict(part.partition("=")[::2] for part in header.split(","))
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).partition(",v1=")[2]
    return hmac.compare_digest(fields.get("v1", ""), expected)


@dataclass(frozen=True)
class Notification:
    webhook: dict[str, Any]  # Alertmanager's webhook body
    alerts: list[dict[str, Any]]  # the same alerts as Alertmanager's API takes them


class TargetQueue:
    def __init__(
        self, target: WebhookTarget, config: WebhookConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.target = target
        self.config = config
        self.queue: collections.deque[Notification] = collections.deque()
        self.sent = 0
        self.retries = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.up = True
        self.last_error = ""
        self.failing_since: float | None = None
        self._wake = asyncio.Event()

    @property
    def url(self) -> str:
        base = self.target.url.rstrip("/")
        return f"{base}/api/v2/alerts" if self.target.kind == "alertmanager" else self.target.url

    def put(self, notification: Notification) -> None:
        if len(self.queue) >= self.config.max_queued:
            self.queue.popleft()
            self.dropped["queue_full"] += 1
        self.queue.append(notification)
        self._wake.set()

    def body(self, notification: Notification) -> bytes:
        payload = (
            notification.alerts if self.target.kind == "alertmanager" else notification.webhook
        )
        return json.dumps(payload, ensure_ascii=False).encode()

    async def send(self, session: aiohttp.ClientSession, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "ebbflow"}
        headers |= self.target.headers
        if self.target.secret:
            headers[SIGNATURE_HEADER] = signature(self.target.secret, body, int(self.clock()))
        async with session.post(self.url, data=body, headers=headers) as resp:
            if resp.status >= 300:
                answer = (await resp.content.read(ANSWER_BYTES)).decode(errors="replace")
                raise http_error(self.url, resp.status, answer, resp.headers.get("Retry-After"))

    async def run(self, session: aiohttp.ClientSession) -> None:
        backoff = self.config.backoff_initial
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                body = self.body(self.queue[0])
            except Exception as err:  # this notification only: the target goes on
                self.queue.popleft()
                self.dropped["rejected"] += 1
                log.error("webhook %s: a notification cannot be encoded: %r", self.target.name, err)
                continue
            try:
                async with asyncio.timeout(self.config.timeout):
                    await self.send(session, body)
            except Exception as err:  # every failure of a send is a retry
                error = err if isinstance(err, SendError) else SendError(repr(err))
                if not error.retry:
                    self.queue.popleft()
                    self.dropped["rejected"] += 1
                    log.error("webhook %s rejected a notification: %s", self.target.name, error)
                    continue
                self.last_error = str(error)
                if self.up:
                    log.warning("webhook %s is unavailable: %s; retrying", self.target.name, error)
                    self.up = False
                    self.failing_since = self.clock()
                self.retries += 1
                wait = error.retry_after or backoff * random.uniform(0.5, 1.5)
                backoff = min(self.config.backoff_max, backoff * 2)
                await asyncio.sleep(wait)
                continue
            self.queue.popleft()
            self.sent += 1
            backoff = self.config.backoff_initial
            if not self.up:
                log.info("webhook %s recovered", self.target.name)
                self.up = True
                self.failing_since = None
