"""What the deciders (rule engine, reconciler, healer, migrator) and the action runner
share, passed as one object so no constructor grows a list of the same collaborators."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ebbflow.bus import Bus
from ebbflow.catalog import ServiceCatalog
from ebbflow.docker_api import DockerHandle
from ebbflow.nodes import Nodes
from ebbflow.state import DecisionStore


def _one_engine() -> Nodes:
    return Nodes([DockerHandle()])  # connects on first use only


@dataclass(frozen=True)
class DecisionContext:
    bus: Bus
    catalog: ServiceCatalog  # what each service is, and whether this instance may act on it
    store: DecisionStore  # decisions, outcomes, healing steps, cooldowns
    clock: Callable[[], float] = time.time
    dry_run: bool = False  # decide and record, change nothing
    nodes: Nodes = field(default_factory=_one_engine)
