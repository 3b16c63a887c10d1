"""The client certificate for engines at tcp:// addresses (`docker.tls`), followed while
ebbflow runs, as the docker CLI reads DOCKER_CERT_PATH at every call: a certificate
renewed in the folder (short-lived ones from step-ca or cert-manager) is used for the
next connection to each engine, without a restart.

A change is taken once the files held still for a look (a key, then its certificate).
It is loaded into a scratch context first: only a set that loads whole goes into the one
every engine's connector uses, so a torn or mismatched pair never breaks the
connections; the last good one stays in force, said once, and
`ebbflow_docker_tls_last_reload_successful` says which. A CA that is added to ca.pem is
trusted from then on; one that is taken out stays trusted until a restart (OpenSSL adds
to a context's trust, never removes).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable
from pathlib import Path

from ebbflow.config import ConfigError, EngineTLS
from ebbflow.docker_api import tls_context
from ebbflow.file_watch import CHECK_EVERY, SettledChange
from ebbflow.metrics import Desc
from ebbflow.model import Sample

log = logging.getLogger("ebbflow.docker")

RELOAD_OK = Desc(
    "ebbflow_docker_tls_last_reload_successful",
    "Whether docker.tls's ca.pem, cert.pem and key.pem last loaded well (1) or not (0: the "
    "last good ones stay in force).",
)
RELOAD_AT = Desc(
    "ebbflow_docker_tls_last_reload_success_timestamp_seconds",
    "When docker.tls's files last loaded well.",
)


class EngineCertificates:
    name = "docker-tls"

    def __init__(self, tls: EngineTLS, context: ssl.SSLContext) -> None:
        self.tls, self.context = tls, context
        self.change = SettledChange(self._files)
        self.ok, self.error, self.loaded_at = True, "", time.time()

    def _files(self) -> list[Path]:
        return [self.tls.cert_path / name for name in ("ca.pem", "cert.pem", "key.pem")]

    def due(self) -> bool:
        """Whether the files changed, held still, and load whole (a scratch context)."""
        if not self.change.due(retry=not self.ok):
            return False
        try:
            tls_context(self.tls)
        except ConfigError as err:
            return self._failed(str(err))
        return True

    def take(self) -> None:
        """Into the context every engine's connector uses (on the event loop, where its
        handshakes run)."""
        folder = self.tls.cert_path
        try:
            self.context.load_verify_locations(cafile=str(folder / "ca.pem"))
            self.context.load_cert_chain(str(folder / "cert.pem"), str(folder / "key.pem"))
        except (ssl.SSLError, OSError) as err:  # changed again since the scratch load
            self._failed(f"docker.tls.cert_path: changed while loading: {err}")
            return
        self.change.taken()
        was_ok, self.ok, self.error, self.loaded_at = self.ok, True, "", time.time()
        log.info(
            "docker.tls: the client certificate in %s read again%s; new connections to "
            "engines use it",
            folder,
            "" if was_ok else " (it loads again)",
        )

    def _failed(self, error: str) -> bool:
        if self.ok or error != self.error:
            log.error("docker.tls: the files changed and do not load; the last good ones "
                      "stay in force: %s", error)  # fmt: skip
        self.ok, self.error = False, error
        return False

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY)
            if await asyncio.to_thread(self.due):
                self.take()

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield RELOAD_OK.sample(1.0 if self.ok else 0.0, now)
        yield RELOAD_AT.sample(self.loaded_at, now)
