"""After a redeploy, ebbflow's own copies of the old configuration are rolled onto the new
one, one at a time (a `rollover` decision: the actuator starts the new copy before it
removes the old), so the service never runs two versions for longer than one replacement."""

from __future__ import annotations

from collections.abc import Iterable

from ebbflow.model import ContainerInfo
from ebbflow.services import CREATED_BY_LABEL


def outdated(replicas: Iterable[ContainerInfo], configuration: str) -> list[ContainerInfo]:
    """ebbflow's own copies of a configuration the service no longer has."""
    return [
        info
        for info in replicas
        if CREATED_BY_LABEL in info.labels
        and info.configuration
        and info.configuration != configuration
    ]


def defined_by_copies(replicas: Iterable[ContainerInfo]) -> bool:
    """Only ebbflow's copies run: no configuration of the operator's to roll onto."""
    return all(CREATED_BY_LABEL in info.labels for info in replicas)
