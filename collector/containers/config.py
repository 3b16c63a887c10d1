"""Options of the containers input."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ebbflow.config import FrozenModel


class ContainersConfig(FrozenModel):
    interval: float | None = Field(None, gt=0, description="Seconds; default: the app interval.")
    timeout: float = Field(5.0, gt=0, description="Seconds allowed for one cycle.")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    proc_root: Path = Path("/proc")
