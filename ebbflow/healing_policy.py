"""The healing policy language: `ebbflow.heal.*` labels over the config's defaults.

Which containers are healed at all: those with a probe (when it fails), and those that
declare any scaling or healing policy (when they exit and Docker will not restart them).
"""

from __future__ import annotations

from collections.abc import Mapping

from ebbflow.config import HealingPolicy
from ebbflow.labels import parse_labels
from ebbflow.names import PROBE_PREFIXES

HEAL_PREFIX = "ebbflow.heal."
HEAL_LABELS = {
    "ebbflow.heal.action": "action",
    "ebbflow.heal.backoff": "backoff",
    "ebbflow.heal.backoff_max": "backoff_max",
    "ebbflow.heal.budget": "budget",
    "ebbflow.heal.window": "window",
}
MANAGED_PREFIXES = ("aliyun.scale", "aliyun.auto_scaling.", "ebbflow.scale.", HEAL_PREFIX)
DOCKER_RESTARTS = {"always", "unless-stopped", "on-failure"}


def parse_healing(
    labels: Mapping[str, str], defaults: HealingPolicy
) -> tuple[HealingPolicy | None, tuple[str, ...]]:
    base = defaults.model_dump(include=set(HealingPolicy.model_fields))
    return parse_labels(labels, HEAL_LABELS, HealingPolicy, base, prefixes=(HEAL_PREFIX,))


def is_managed(labels: Mapping[str, str]) -> bool:
    """A policy or a probe names the container: ebbflow answers for keeping it running
    (and moves it when its node fails)."""
    return any(key.startswith((*MANAGED_PREFIXES, *PROBE_PREFIXES)) for key in labels)


def heals_exits(labels: Mapping[str, str], restart_policy: str) -> bool:
    """An exited container is ebbflow's to bring back when a policy claims it and Docker's
    own restart policy does not."""
    return restart_policy not in DOCKER_RESTARTS and any(
        key.startswith(MANAGED_PREFIXES) for key in labels
    )
