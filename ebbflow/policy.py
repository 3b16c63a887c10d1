"""The scaling policy language, from container labels or the YAML config: the core's, since
the service catalog answers every service's policy and the rules and the scaler read it.

Seed dialect: `aliyun.scale` and every `aliyun.auto_scaling.*` key. Native dialect:
`ebbflow.scale.<key>` for the policy's settings and its default metric, and
`ebbflow.scale.<id>.<metric key>` for further metrics (`ebbflow.scale.queue.metric`,
`ebbflow.scale.queue.target`, ...). A bad policy becomes errors that name the label and
the value; the service is then left alone.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from ebbflow.config import ConfiguredPolicy, FrozenModel, RulesConfig
from ebbflow.labels import parse_labels
from ebbflow.names import (
    CONTAINER_CPU_PERCENT,
    CONTAINER_MEMORY_PERCENT,
    CONTAINER_THROTTLED_PERCENT,
)
from ebbflow.plugins import available

CPU_METRIC = CONTAINER_CPU_PERCENT
MEMORY_METRIC = CONTAINER_MEMORY_PERCENT
THROTTLING_METRIC = CONTAINER_THROTTLED_PERCENT


@functools.cache
def strategy_names() -> frozenset[str]:
    """The strategies installed (rules/strategies registers them by entry point)."""
    return frozenset(available("strategies"))


METRIC_ALIASES = {"cpu": CPU_METRIC, "memory": MEMORY_METRIC, "throttling": THROTTLING_METRIC}
PERCENT_METRICS = {CPU_METRIC, MEMORY_METRIC}

# label → policy setting
SETTING_LABELS: dict[str, str] = {
    "aliyun.scale": "initial_replicas",
    "aliyun.auto_scaling.step": "step",
    "aliyun.auto_scaling.min_instances": "min_replicas",
    "aliyun.auto_scaling.max_instances": "max_replicas",
    "ebbflow.scale.initial_replicas": "initial_replicas",
    "ebbflow.scale.step": "step",
    "ebbflow.scale.min_replicas": "min_replicas",
    "ebbflow.scale.max_replicas": "max_replicas",
    "ebbflow.scale.cooldown": "cooldown",
    "ebbflow.scale.cooldown_up": "cooldown_up",
    "ebbflow.scale.cooldown_down": "cooldown_down",
    "ebbflow.scale.window": "window",
    "ebbflow.scale.stabilization": "stabilization",
    "ebbflow.scale.stabilization_up": "stabilization_up",
    "ebbflow.scale.headroom": "headroom",
    "ebbflow.scale.mode": "mode",
    "ebbflow.scale.tolerance": "tolerance",
    "ebbflow.scale.on_missing": "on_missing",
    "ebbflow.scale.max_up": "max_up",
    "ebbflow.scale.max_down": "max_down",
    "ebbflow.scale.warmup": "warmup",
    "ebbflow.scale.startup": "startup",
}
# seed-dialect label → (metric rule id, rule field)
SEED_RULE_LABELS: dict[str, tuple[str, str]] = {
    "aliyun.auto_scaling.max_cpu": ("cpu", "max"),
    "aliyun.auto_scaling.min_cpu": ("cpu", "min"),
    "aliyun.auto_scaling.max_memory": ("memory", "max"),
    "aliyun.auto_scaling.min_memory": ("memory", "min"),
}
RULE_KEYS = ("metric", "target", "max", "min", "aggregation")
NATIVE = "ebbflow.scale."
DECLARED_COUNT_LABELS = ("aliyun.scale", "ebbflow.scale.initial_replicas")
SCALING_PREFIXES = ("aliyun.auto_scaling.", NATIVE)


def _strip_percent(value: Any) -> Any:
    return value.strip().removesuffix("%").strip() if isinstance(value, str) else value


class MetricRule(FrozenModel):
    """One metric the service scales on: a target (proportional) or thresholds (step)."""

    id: str
    metric: str
    target: float | None = Field(None, gt=0)
    max: float | None = None
    min: float | None = Field(None, ge=0)
    aggregation: Literal["avg", "max", "p95"] = "avg"

    @field_validator("target", "max", "min", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        return _strip_percent(value)

    @field_validator("target", "max", "min")
    @classmethod
    def _normal(cls, value: float | None) -> float | None:
        # A subnormal bound (1e-320) divides into infinity: no operator means it.
        if value is not None and value != 0 and abs(value) < sys.float_info.min:
            raise ValueError("is too small to compute with (a subnormal number)")
        return value

    @field_validator("metric")
    @classmethod
    def _alias(cls, value: str) -> str:
        return METRIC_ALIASES.get(value.strip(), value.strip())

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.target is None and self.max is None and self.min is None:
            raise ValueError("needs a target, or max/min thresholds")
        if self.target is not None and (self.max is not None or self.min is not None):
            raise ValueError("target (proportional) and max/min (step) do not mix in one metric")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min:g}) must be below max ({self.max:g})")
        return self

    @property
    def proportional(self) -> bool:
        return self.target is not None

    @property
    def label(self) -> str:
        """How a reason names the metric: `cpu`, `memory`, or the sample name."""
        for alias, name in METRIC_ALIASES.items():
            if self.metric == name:
                return alias
        return self.metric

    def show(self, value: float) -> str:
        percent = self.metric in PERCENT_METRICS or self.metric == THROTTLING_METRIC
        return f"{value:.1f}%" if percent else f"{value:.4g}"


class Policy(FrozenModel):
    # No rules: a fixed replica count (`aliyun.scale` alone), kept but never scaled.
    rules: tuple[MetricRule, ...] = ()
    initial_replicas: int | None = Field(None, ge=0)
    mode: str = Field("predictive", description="The strategy of target rules (by name).")
    step: int = Field(1, ge=1)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(10, ge=1)
    cooldown: float = Field(60.0, ge=0)
    cooldown_up: float | None = Field(None, ge=0)
    cooldown_down: float | None = Field(None, ge=0)
    window: float = Field(30.0, gt=0)
    stabilization: float | None = Field(None, ge=0)
    stabilization_up: float = Field(0.0, ge=0)
    headroom: float = Field(1.5, ge=0, description="σ of load noise kept within capacity.")
    tolerance: float = Field(0.15, ge=0, lt=1)
    on_missing: str = "hold"
    max_up: int | None = Field(None, ge=1)
    max_down: int | None = Field(None, ge=1)
    warmup: float = Field(0.0, ge=0)
    # Until a start-up is seen: a slow guess, since guessing short costs a round of
    # unserved load and guessing long only a replica or two for one start-up.
    startup: float = Field(30.0, gt=0)

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        value = value.strip()
        known = strategy_names()
        if value not in known:
            raise ValueError(f"must be one of {', '.join(sorted(known))}")
        return value

    @field_validator("on_missing")
    @classmethod
    def _on_missing(cls, value: str) -> str:
        value = value.strip()
        if value in ("hold", "scale_up_only"):
            return value
        kind, _, n = value.partition(":")
        if kind == "fallback" and n.isdigit():
            return value
        raise ValueError("must be hold, scale_up_only or fallback:N")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must not exceed "
                f"max_replicas ({self.max_replicas})"
            )
        if self.mode == "step" and any(r.proportional for r in self.rules):
            raise ValueError("mode (step) cannot use a metric with a target: give it max/min")
        initial = self.initial_replicas
        if (
            self.rules
            and initial is not None
            and not (self.min_replicas <= initial <= self.max_replicas)
        ):
            raise ValueError(
                f"initial_replicas ({initial}) must lie between min_replicas "
                f"({self.min_replicas}) and max_replicas ({self.max_replicas})"
            )
        ids = [r.id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"metric ids repeat: {ids}")
        return self

    @property
    def up_cooldown(self) -> float:
        return self.cooldown if self.cooldown_up is None else self.cooldown_up

    @property
    def down_cooldown(self) -> float:
        return self.cooldown if self.cooldown_down is None else self.cooldown_down

    @property
    def stabilization_window(self) -> float:
        """Scale-in waits this long for the highest recommendation; default: the window."""
        return self.window if self.stabilization is None else self.stabilization

    @property
    def fallback(self) -> int | None:
        kind, _, n = self.on_missing.partition(":")
        return int(n) if kind == "fallback" else None

    def reads(self, metric: str) -> bool:
        return any(r.metric == metric for r in self.rules)


def policy_line(policy: Policy) -> str:
    """The policy in one line, as `ebbflow policies` and the status page show it."""
    if not policy.rules:
        return f"fixed replicas={policy.initial_replicas}"
    rules = []
    for rule in policy.rules:
        bounds = " ".join(
            f"{name}={value:g}"
            for name, value in (("target", rule.target), ("max", rule.max), ("min", rule.min))
            if value is not None
        )
        rules.append(f"{rule.id}[{bounds}]")
    return (
        f"{' '.join(rules)} mode={policy.mode} replicas={policy.min_replicas}.."
        f"{policy.max_replicas} cooldown(up/down)={policy.up_cooldown:g}/"
        f"{policy.down_cooldown:g}s window={policy.window:g}s"
    )


@dataclass(frozen=True)
class PolicyResult:
    """What a service's labels (and config) say: a policy, or why there is none."""

    policy: Policy | None
    errors: tuple[str, ...] = ()
    declared: bool = False  # scaling was asked for at all

    @property
    def ok(self) -> bool:
        return self.policy is not None and not self.errors


def _group(labels: Mapping[str, str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Rule id → {label: value} for every metric label; unknown native keys as errors."""
    rules: dict[str, dict[str, str]] = {}
    errors = []
    default_id = labels.get(NATIVE + "metric", "cpu").strip() or "cpu"
    for label, value in labels.items():
        if label in SEED_RULE_LABELS:
            rules.setdefault(SEED_RULE_LABELS[label][0], {})[label] = value
        elif label.startswith(NATIVE) and label not in SETTING_LABELS:
            key = label[len(NATIVE) :]
            if key in RULE_KEYS:
                rules.setdefault(default_id, {})[label] = value
            elif "." in key and key.rsplit(".", 1)[1] in RULE_KEYS:
                rules.setdefault(key.rsplit(".", 1)[0], {})[label] = value
            else:
                errors.append(f"{label}: unknown key")
        elif label.startswith("aliyun.auto_scaling.") and label not in SETTING_LABELS:
            errors.append(f"{label}: unknown key")
    return rules, errors


def _rule_fields(rule_id: str, rule_labels: Mapping[str, str]) -> dict[str, str]:
    """label → MetricRule field, for one rule's labels."""
    fields = {}
    for label in rule_labels:
        if label in SEED_RULE_LABELS:
            fields[label] = SEED_RULE_LABELS[label][1]
        else:
            fields[label] = label.rsplit(".", 1)[1]
    return fields


def parse_policy(labels: Mapping[str, str], defaults: RulesConfig | None = None) -> PolicyResult:
    defaults = defaults or RulesConfig()
    if not any(key.startswith(SCALING_PREFIXES) or key == "aliyun.scale" for key in labels):
        return PolicyResult(None)
    grouped, errors = _group(labels)
    rules = []
    for rule_id, rule_labels in sorted(grouped.items()):
        identity = {"id": rule_id, "metric": rule_id}
        rule, rule_errors = parse_labels(
            rule_labels, _rule_fields(rule_id, rule_labels), MetricRule, identity
        )
        errors.extend(rule_errors)
        if rule is not None:
            rules.append(rule)
    if not grouped and not any(labels.get(label) for label in DECLARED_COUNT_LABELS):
        errors.append(
            "no metric: set a threshold (aliyun.auto_scaling.max_cpu, ...) or "
            "ebbflow.scale.metric with a target or max/min, or only a replica count "
            "(aliyun.scale)"
        )
    step_only = bool(rules) and all(not r.proportional for r in rules)
    settings: dict[str, Any] = {
        "rules": tuple(rules),
        # Step mode needs a cooldown to see an action's effect; proportional modes do not:
        # they count starting replicas, and scale-in is held by the stabilisation window.
        "cooldown": defaults.default_cooldown if step_only else 0.0,
        "window": defaults.default_window,
        "max_replicas": defaults.default_max_instances,
    }
    if step_only:
        settings["mode"] = "step"
    policy, policy_errors = parse_labels(labels, SETTING_LABELS, Policy, settings)
    if errors or policy_errors:
        return PolicyResult(
            None,
            tuple(errors) + tuple(e for e in policy_errors if not e.startswith("rules")),
            declared=True,
        )
    return PolicyResult(policy, declared=True)


def effective_labels(
    labels: Mapping[str, str],
    service: str,
    service_name: str,
    configured: Sequence[ConfiguredPolicy],
) -> dict[str, str]:
    """Container labels, then the first matching config policy on top, key by key: the
    operator's config has the last word."""
    for entry in configured:
        if entry.matches(service, service_name, labels):
            return {**labels, **entry.labels}
    return dict(labels)
