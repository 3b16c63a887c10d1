"""Scaling policies declared as labels, in the Alibaba Cloud dialect and ebbflow's own.

A policy is validated into a frozen model; a bad one becomes a list of errors that each
name the label and the value, and the service is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from pydantic import Field, model_validator

from ebbflow.config import FrozenModel, RulesConfig
from ebbflow.labels import parse_labels

# label → policy field. Adding a key to the language is adding a line here.
LABEL_FIELDS: dict[str, str] = {
    "aliyun.scale": "initial_replicas",
    "aliyun.auto_scaling.max_cpu": "max_cpu",
    "aliyun.auto_scaling.min_cpu": "min_cpu",
    "aliyun.auto_scaling.max_memory": "max_memory",
    "aliyun.auto_scaling.min_memory": "min_memory",
    "aliyun.auto_scaling.step": "step",
    "aliyun.auto_scaling.max_instances": "max_instances",
    "aliyun.auto_scaling.min_instances": "min_instances",
    "ebbflow.scale.cooldown": "cooldown",
    "ebbflow.scale.window": "window",
}
# A label under one of these prefixes turns scaling on; an unknown key under them is an error.
SCALING_PREFIXES = ("aliyun.auto_scaling.", "ebbflow.scale.")
PERCENT_FIELDS = {"max_cpu", "min_cpu", "max_memory", "min_memory"}


class ScalePolicy(FrozenModel):
    """Step scaling on CPU and memory percent, with instance bounds and a cooldown."""

    initial_replicas: int | None = Field(None, ge=0)
    max_cpu: float | None = Field(None, gt=0)
    min_cpu: float | None = Field(None, ge=0)
    max_memory: float | None = Field(None, gt=0, le=100)
    min_memory: float | None = Field(None, ge=0, le=100)
    step: int = Field(1, ge=1)
    min_instances: int = Field(1, ge=0)
    max_instances: int = Field(10, ge=1)
    cooldown: float = Field(60.0, ge=0)
    window: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for metric in ("cpu", "memory"):
            low, high = getattr(self, f"min_{metric}"), getattr(self, f"max_{metric}")
            if low is not None and high is not None and low >= high:
                raise ValueError(f"min_{metric} ({low:g}) must be below max_{metric} ({high:g})")
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) must not exceed "
                f"max_instances ({self.max_instances})"
            )
        if all(getattr(self, f) is None for f in PERCENT_FIELDS):
            raise ValueError(
                "no threshold: set at least one of max_cpu, min_cpu, max_memory, min_memory"
            )
        return self


@dataclass(frozen=True)
class PolicyResult:
    """What a service's labels say: a policy, or why there is none."""

    policy: ScalePolicy | None
    errors: tuple[str, ...] = ()
    declared: bool = False  # the labels ask for scaling at all

    @property
    def ok(self) -> bool:
        return self.policy is not None and not self.errors


def _clean(field: str, raw: str) -> Any:
    value = raw.strip()
    return value.removesuffix("%").strip() if field in PERCENT_FIELDS else value


def parse_policy(labels: Mapping[str, str], defaults: RulesConfig | None = None) -> PolicyResult:
    defaults = defaults or RulesConfig()
    if not any(key.startswith(SCALING_PREFIXES) for key in labels):
        return PolicyResult(None)
    base = {
        "cooldown": defaults.default_cooldown,
        "window": defaults.default_window,
        "max_instances": defaults.default_max_instances,
    }
    policy, errors = parse_labels(labels, LABEL_FIELDS, ScalePolicy, base, _clean, SCALING_PREFIXES)
    return PolicyResult(policy, errors, declared=True)
