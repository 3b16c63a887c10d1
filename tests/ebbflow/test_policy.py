import pytest

from ebbflow.config import ConfiguredPolicy, PolicySelector, RulesConfig
from ebbflow.policy import CPU_METRIC, MEMORY_METRIC, effective_labels, parse_policy

SEED = {
    "aliyun.scale": "1",
    "aliyun.auto_scaling.max_cpu": "40",
    "aliyun.auto_scaling.min_cpu": "10%",
    "aliyun.auto_scaling.max_memory": "80",
    "aliyun.auto_scaling.step": "2",
    "aliyun.auto_scaling.max_instances": "3",
    "aliyun.auto_scaling.min_instances": "1",
    "ebbflow.scale.cooldown": "5",
    "ebbflow.scale.window": "15",
}


def test_seed_dialect() -> None:
    result = parse_policy(SEED)
    assert result.ok and result.policy is not None
    p = result.policy
    assert (p.initial_replicas, p.step, p.min_replicas, p.max_replicas) == (1, 2, 1, 3)
    assert (p.mode, p.up_cooldown, p.down_cooldown, p.window) == ("step", 5, 5, 15)
    rules = {r.id: r for r in p.rules}
    assert (rules["cpu"].metric, rules["cpu"].max, rules["cpu"].min) == (CPU_METRIC, 40, 10)
    assert (rules["memory"].metric, rules["memory"].max) == (MEMORY_METRIC, 80)


def test_native_dialect_with_several_metrics() -> None:
    result = parse_policy(
        {
            "ebbflow.scale.metric": "cpu",
            "ebbflow.scale.target": "70",
            "ebbflow.scale.queue.metric": "queue_depth",
            "ebbflow.scale.queue.target": "100",
            "ebbflow.scale.latency.metric": "probe_duration_seconds",
            "ebbflow.scale.latency.target": "0.2",
            "ebbflow.scale.latency.aggregation": "p95",
            "ebbflow.scale.mode": "predictive",
            "ebbflow.scale.min_replicas": "2",
            "ebbflow.scale.max_replicas": "30",
            "ebbflow.scale.cooldown_up": "0",
            "ebbflow.scale.cooldown_down": "120",
            "ebbflow.scale.on_missing": "fallback:3",
            "ebbflow.scale.stabilization": "300",
            "ebbflow.scale.tolerance": "0.05",
            "ebbflow.scale.max_up": "5",
            "ebbflow.scale.max_down": "1",
        }
    )
    assert result.ok and result.policy is not None, result.errors
    p = result.policy
    rules = {r.id: r for r in p.rules}
    assert set(rules) == {"cpu", "queue", "latency"}
    assert rules["latency"].aggregation == "p95" and rules["queue"].target == 100
    assert (p.mode, p.min_replicas, p.max_replicas, p.fallback) == ("predictive", 2, 30, 3)
    assert (p.up_cooldown, p.down_cooldown, p.stabilization_window) == (0, 120, 300)
    assert (p.tolerance, p.max_up, p.max_down) == (0.05, 5, 1)


def test_defaults_come_from_config() -> None:
    p = parse_policy(
        {"aliyun.auto_scaling.max_memory": "80"},
        RulesConfig(default_cooldown=7, default_window=9, default_max_instances=4),
    )
    assert p.policy is not None
    assert (p.policy.cooldown, p.policy.window, p.policy.max_replicas) == (7, 9, 4)


def test_no_scaling_labels_means_no_policy_and_no_error() -> None:
    result = parse_policy({"com.docker.compose.service": "web", "ebbflow.heal.budget": "2"})
    assert (result.policy, result.errors, result.declared) == (None, (), False)


@pytest.mark.parametrize("label", ["aliyun.scale", "ebbflow.scale.initial_replicas"])
def test_a_replica_count_alone_is_a_fixed_count_policy(label: str) -> None:
    result = parse_policy({label: "3", "com.docker.compose.service": "web"})
    assert result.ok and result.declared
    assert result.policy is not None
    assert (result.policy.initial_replicas, result.policy.rules) == (3, ())


def test_a_declared_count_outside_the_bounds_of_a_scaling_policy_is_an_error() -> None:
    result = parse_policy(
        {
            "aliyun.scale": "5",
            "aliyun.auto_scaling.max_cpu": "70",
            "aliyun.auto_scaling.max_instances": "4",
        }
    )
    assert result.errors == (
        "aliyun.scale (5) must lie between ebbflow.scale.min_replicas (1) and "
        "aliyun.auto_scaling.max_instances (4)",
    )


def test_a_bad_declared_count_names_its_label() -> None:
    assert parse_policy({"aliyun.scale": "three"}).errors == (
        "aliyun.scale: Input should be a valid integer, unable to parse string as an "
        "integer (got 'three')",
    )


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {"aliyun.auto_scaling.max_cpu": "abc"},
            "aliyun.auto_scaling.max_cpu: Input should be a valid number",
        ),
        (
            {"aliyun.auto_scaling.max_cpu": "50", "aliyun.auto_scaling.step": "-1"},
            "aliyun.auto_scaling.step: Input should be greater than or equal to 1 (got '-1')",
        ),
        (
            {
                "aliyun.auto_scaling.max_cpu": "50",
                "aliyun.auto_scaling.min_instances": "5",
                "aliyun.auto_scaling.max_instances": "2",
            },
            "aliyun.auto_scaling.min_instances (5) must not exceed "
            "aliyun.auto_scaling.max_instances",
        ),
        (
            {"aliyun.auto_scaling.max_cpu": "20", "aliyun.auto_scaling.min_cpu": "30"},
            "aliyun.auto_scaling.min_cpu (30) must be below aliyun.auto_scaling.max_cpu (20)",
        ),
        ({"aliyun.auto_scaling.step": "1"}, "no metric"),
        (
            {"aliyun.auto_scaling.max_cpu": "50", "aliyun.auto_scaling.max_cpus": "60"},
            "aliyun.auto_scaling.max_cpus: unknown key",
        ),
        (
            {"ebbflow.scale.cooldown": "-3", "aliyun.auto_scaling.max_cpu": "50"},
            "ebbflow.scale.cooldown: Input should be greater than or equal to 0",
        ),
        ({"ebbflow.scale.target": "70", "ebbflow.scale.max": "90"}, "do not mix"),
        ({"ebbflow.scale.target": "70", "ebbflow.scale.mode": "step"}, "mode (step)"),
        (
            {"ebbflow.scale.target": "70", "ebbflow.scale.on_missing": "panic"},
            "ebbflow.scale.on_missing: must be hold, scale_up_only or fallback:N (got 'panic')",
        ),
        (
            {"ebbflow.scale.target": "70", "ebbflow.scale.aggregation": "median"},
            "ebbflow.scale.aggregation: Input should be 'avg', 'max' or 'p95'",
        ),
        (
            {"ebbflow.scale.q.metric": "x", "ebbflow.scale.q.tagret": "5"},
            "ebbflow.scale.q.tagret: unknown key",
        ),
    ],
)
def test_bad_labels_give_named_errors(labels: dict[str, str], expected: str) -> None:
    result = parse_policy(labels)
    assert result.policy is None and result.declared
    assert any(expected in error for error in result.errors), result.errors


def test_config_policies_select_and_override_key_by_key() -> None:
    configured = (
        ConfiguredPolicy(
            selector=PolicySelector(service="shop/api*", labels={"tier": "web"}),
            labels={"ebbflow.scale.target": "60"},
        ),
        ConfiguredPolicy(
            selector=PolicySelector(service="shop/*"), labels={"ebbflow.scale.target": "80"}
        ),
    )
    own = {"ebbflow.scale.target": "50", "ebbflow.scale.max_replicas": "4", "tier": "web"}
    assert (
        effective_labels(own, "shop/api-v2", "api-v2", configured)["ebbflow.scale.target"] == "60"
    )
    merged = effective_labels({**own, "tier": "batch"}, "shop/api", "api", configured)
    assert merged["ebbflow.scale.target"] == "80"  # first match: the tier differs
    assert merged["ebbflow.scale.max_replicas"] == "4"  # the service's other keys stay
    assert effective_labels(own, "other/x", "x", configured) == own


def test_throttling_is_an_alias_for_the_throttled_share() -> None:
    result = parse_policy({"ebbflow.scale.metric": "throttling", "ebbflow.scale.max": "20",
                           "ebbflow.scale.min": "2"})  # fmt: skip
    assert result.ok and result.policy is not None
    (rule,) = result.policy.rules
    assert rule.metric == "ebbflow_container_cpu_throttled_percent"
    assert (rule.label, rule.show(12.34)) == ("throttling", "12.3%")
