"""Basic auth against the web config's bcrypt hashes, for every path but `/healthz` (a
liveness check says only "ok", and the image's HEALTHCHECK has no password).

bcrypt costs tens of milliseconds per check by design, so a check runs off the event loop,
and a successful one is remembered (by a SHA-256 of user, password and hash, as the
exporter toolkit caches it) so a Prometheus scrape every second costs one hash, not one
per scrape. Failures are never cached: each pays the full price.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Awaitable, Callable, Mapping

import bcrypt
from aiohttp import web

OPEN_PATHS = frozenset({"/healthz"})
CACHE_MAX = 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BasicAuth:
    def __init__(self, users: Mapping[str, str], realm: str = "ebbflow") -> None:
        self.users = {user: hashed.encode() for user, hashed in users.items()}
        self.realm = realm
        self.good: set[bytes] = set()
        self.rejected = 0

    def set_users(self, users: Mapping[str, str]) -> None:
        """The web config read again: a changed or removed user's remembered passwords
        are forgotten with it."""
        fresh = {user: hashed.encode() for user, hashed in users.items()}
        if fresh != self.users:
            self.users = fresh
            self.good.clear()

    def _key(self, user: str, password: bytes, hashed: bytes) -> bytes:
        return hashlib.sha256(user.encode() + b"\0" + password + b"\0" + hashed).digest()

    async def allowed(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if not sep or hashed is None:
            return False
        key = self._key(user, password.encode(), hashed)
        if key in self.good:
            return True
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
        if ok:
            if len(self.good) >= CACHE_MAX:
                self.good.clear()
            self.good.add(key)
        return ok

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or not self.users:  # no users: no auth
            return await handler(request)
        if await self.allowed(request.headers.get("Authorization", "")):
            return await handler(request)
        self.rejected += 1
        return web.Response(
            status=401,
            text="401 Unauthorized\n",
            headers={"WWW-Authenticate": f'Basic realm="{self.realm}", charset="UTF-8"'},
        )


def headers_middleware(
    headers: Callable[[], Mapping[str, str]],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The web config's `http_server_config.headers` as they are now, on every answer."""

    @web.middleware
    async def add_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        for name, value in headers().items():
            response.headers.setdefault(name, value)
        return response

    return add_headers


__all__ = ["BasicAuth", "headers_middleware"]
