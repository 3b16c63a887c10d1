"""Options of the node input."""

from __future__ import annotations

from pydantic import Field

from ebbflow.config import FrozenModel

PSEUDO_FILESYSTEMS = ("tmpfs", "devtmpfs", "overlay", "squashfs", "nsfs", "proc", "sysfs")


class NodeConfig(FrozenModel):
    name: str | None = Field(None, description="The `node` label; default: the host name.")
    interval: float | None = Field(None, gt=0, description="Seconds; default: the app interval.")
    timeout: float = Field(5.0, gt=0)
    ignored_fstypes: tuple[str, ...] = PSEUDO_FILESYSTEMS
    ignored_devices: tuple[str, ...] = ("lo",)
