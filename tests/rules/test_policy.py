import pytest

from ebbflow.config import RulesConfig
from ebbflow.rules.policy import parse_policy

GOOD = {
    "aliyun.scale": "1",
    "aliyun.auto_scaling.max_cpu": "40",
    "aliyun.auto_scaling.min_cpu": "10%",
    "aliyun.auto_scaling.step": "2",
    "aliyun.auto_scaling.max_instances": "3",
    "aliyun.auto_scaling.min_instances": "1",
    "ebbflow.scale.cooldown": "5",
    "ebbflow.scale.window": "15",
}


def test_seed_and_native_labels_parse() -> None:
    result = parse_policy(GOOD)
    assert result.ok and result.policy is not None
    p = result.policy
    assert (p.initial_replicas, p.max_cpu, p.min_cpu, p.step) == (1, 40, 10, 2)
    assert (p.min_instances, p.max_instances, p.cooldown, p.window) == (1, 3, 5, 15)


def test_defaults_come_from_config() -> None:
    p = parse_policy(
        {"aliyun.auto_scaling.max_memory": "80"},
        RulesConfig(default_cooldown=7, default_window=9, default_max_instances=4),
    )
    assert p.policy is not None
    assert (p.policy.cooldown, p.policy.window, p.policy.max_instances) == (7, 9, 4)


def test_no_scaling_labels_means_no_policy_and_no_error() -> None:
    result = parse_policy({"aliyun.scale": "3", "com.docker.compose.service": "web"})
    assert (result.policy, result.errors, result.declared) == (None, (), False)


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
        ({"aliyun.auto_scaling.step": "1"}, "no threshold"),
        (
            {"aliyun.auto_scaling.max_cpu": "50", "aliyun.auto_scaling.max_cpus": "60"},
            "aliyun.auto_scaling.max_cpus: unknown key",
        ),
        (
            {"ebbflow.scale.cooldown": "-3", "aliyun.auto_scaling.max_cpu": "50"},
            "ebbflow.scale.cooldown: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_labels_give_named_errors(labels: dict[str, str], expected: str) -> None:
    result = parse_policy(labels)
    assert result.policy is None and result.declared
    assert any(expected in error for error in result.errors), result.errors
