"""Options of the nagios input: the checks to run."""

from __future__ import annotations

from pydantic import Field

from ebbflow.config import FrozenModel


class NagiosCheckConfig(FrozenModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    command: tuple[str, ...] = Field(min_length=1, description="argv; run without a shell.")
    interval: float | None = Field(None, gt=0, description="Seconds; default: the app interval.")
    timeout: float = Field(10.0, gt=0, description="The command is killed past this.")
    max_output: int = Field(
        8192,
        ge=256,
        description="Bytes of the plugin's output kept (Nagios' own bound); the rest is read "
        "and dropped, so the plugin never blocks on a full pipe.",
    )


class NagiosConfig(FrozenModel):
    checks: tuple[NagiosCheckConfig, ...] = ()
