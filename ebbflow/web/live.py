"""The web config kept current: the file and the files it names (certificate, key, client
CA) are looked at every second, and a change is read again once it held still for one
look, as the exporter toolkit reads its file on every request. A certificate renewed by
certbot or cert-manager, a user added or a password changed takes effect within two
seconds, without a restart.

A change that does not load (a torn write, a key that does not match its certificate, an
emptied file) is said once, loudly, and the last good config stays in force: a
half-written file never opens the server or locks everyone out.
`ebbflow_web_config_last_reload_successful` says which, under the name Prometheus uses for
its own config.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from ebbflow.config import ConfigError
from ebbflow.file_watch import SettledChange
from ebbflow.metrics import Desc
from ebbflow.model import Sample

from .config import load_web_config

log = logging.getLogger("ebbflow.web")

RELOAD_OK = Desc(
    "ebbflow_web_config_last_reload_successful",
    "Whether a server's web config file and its certificates last read well (1) or not (0: "
    "the last good config stays in force).",
    "gauge",
    ("server",),
)
RELOAD_AT = Desc(
    "ebbflow_web_config_last_reload_success_timestamp_seconds",
    "When a server's web config was last read well.",
    "gauge",
    ("server",),
)


class LiveWebConfig:
    """The current web config and TLS context of one server, and whether the last read
    of its files went well."""

    def __init__(self, path: Path, where: str) -> None:
        self.path, self.where = path, where
        self.config, self.tls = load_web_config(path, where)  # a bad file fails the start
        self.change = SettledChange(self._files)
        self.ok, self.error, self.loaded_at = True, "", time.time()

    def _files(self) -> list[Path]:
        tls = self.config.tls_server_config
        named = [] if tls is None else [tls.cert_file, tls.key_file, tls.client_ca_file]
        return [self.path, *(self.path.parent / name for name in named if name)]

    def check(self) -> bool:
        """Read again when a file changed and then held still for a look (a broken config:
        at every still look, as it may name files that come later). True when the TLS
        context changed, so the listener must be opened again with it."""
        if not self.change.due(retry=not self.ok):
            return False
        try:
            config, tls = load_web_config(self.path, self.where, empty_ok=False)
        except ConfigError as err:
            return self._failed(err)
        was, was_ok = self.config.tls_server_config, self.ok
        self.config, self.tls = config, tls
        before = self.change.taken()  # the files it names now
        tls_changed = config.tls_server_config != was or (
            config.tls_server_config is not None and before[1:] != self.change.good[1:]
        )
        self.ok, self.error, self.loaded_at = True, "", time.time()
        log.info(
            "web config read again%s%s",
            "" if was_ok else "; it loads again",
            "; the listener opens again with the new TLS settings" if tls_changed else "",
        )
        return tls_changed

    def _failed(self, err: ConfigError) -> bool:
        if self.ok or str(err) != self.error:
            log.error("the web config changed and does not load; the last good one "
                      "stays in force: %s", err)  # fmt: skip
        self.ok, self.error = False, str(err)
        return False

    def telemetry(self, now: float, server: str) -> Iterable[Sample]:
        yield RELOAD_OK.sample(1.0 if self.ok else 0.0, now, server)
        yield RELOAD_AT.sample(self.loaded_at, now, server)


__all__ = ["LiveWebConfig"]
