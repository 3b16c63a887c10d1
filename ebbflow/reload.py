"""SIGHUP: the config read again, and what can change live changed live.

What can: `log_level`, `rules` (every service's policy is parsed again), `healing`,
`reconcile`, `max_actions_per_minute`. Everything else (the engines, inputs, outputs,
state, scope, lease, ...) is built into the running parts: a change there is said, named,
and takes effect at the next start; the instance runs on. A config that does not validate
is said and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ebbflow.config import AppConfig, ConfigError

log = logging.getLogger("ebbflow.reload")

Apply = Callable[[Any], None]


@dataclass
class Reloader:
    current: AppConfig
    read: Callable[[], AppConfig]  # the config read again, as at start (file, env, flags)
    live: dict[str, Apply] = field(default_factory=dict)  # top-level key → how to apply it
    reloads: int = 0

    def __call__(self) -> None:
        try:
            fresh = self.read()
        except ConfigError as err:
            log.error("SIGHUP: the config does not validate, nothing changed: %s", err)
            return
        changed, later = [], []
        for key in AppConfig.model_fields:
            old, new = getattr(self.current, key), getattr(fresh, key)
            if old == new:
                continue
            if key in self.live:
                self.live[key](new)
                changed.append(key)
            else:
                later.append(key)
        self.current = fresh.model_copy(update={k: getattr(self.current, k) for k in later})
        self.reloads += 1
        if changed:
            log.info("SIGHUP: config reloaded: %s changed live", ", ".join(changed))
        if later:
            log.warning(
                "SIGHUP: %s changed but cannot change live (built into running parts): "
                "restart ebbflow to apply; running on with the old values",
                ", ".join(later),
            )
        if not changed and not later:
            log.info("SIGHUP: config read again: nothing changed")
