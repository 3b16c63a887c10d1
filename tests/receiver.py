"""A real HTTP receiver for webhook bodies, checking HMAC signatures when they come."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

SECRET = "s3cret"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LoopbackServer:
    """An aiohttp app on 127.0.0.1:`port`; subclasses say which POST paths go where."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.runner: web.AppRunner | None = None

    def routes(self) -> dict[str, Handler]:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        for path, handler in self.routes().items():
            app.router.add_post(path, handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


class Receiver(LoopbackServer):
    """Webhook bodies by path; a body whose signature does not verify is refused."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self.bad_signatures = 0

    def routes(self) -> dict[str, Handler]:
        return {"/{name}": self.hook}

    def webhook_output(self) -> dict[str, Any]:
        """ebbflow's webhook output section that sends here, to `/hook`, without delay."""
        return {"targets": [{"url": f"http://127.0.0.1:{self.port}/hook"}], "group_wait": 0.1}

    async def hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        signed = request.headers.get("X-Ebbflow-Signature")
        if signed is not None:
            # As the README's receiver does: HMAC of "<t>.<body>", t within 5 minutes.
            fields = dict(part.partition("=")[::2] for part in signed.split(","))
            good = hmac.new(
                SECRET.encode(), fields.get("t", "").encode() + b"." + raw, hashlib.sha256
            ).hexdigest()
            fresh = fields.get("t", "").isdigit() and abs(time.time() - int(fields["t"])) <= 300
            if not fresh or not hmac.compare_digest(fields.get("v1", ""), good):
                self.bad_signatures += 1
                return web.Response(status=401)
        self.bodies.setdefault(request.path, []).append(json.loads(raw))
        return web.Response(status=200)


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110  (polling a condition is the point)
            await asyncio.sleep(0.05)


def alerts(bodies: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, str]]]:
    """(status, alertname, labels) of every alert in every body, in arrival order."""
    return [
        (alert["status"], alert["labels"]["alertname"], alert["labels"])
        for body in bodies
        for alert in body["alerts"]
    ]
