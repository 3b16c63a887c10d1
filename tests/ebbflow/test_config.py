from pathlib import Path

import pytest

from ebbflow.config import ConfigError, env_overrides, load_config
from ebbflow.web.config import load_web_config


def test_defaults_need_no_file() -> None:
    config = load_config(None, environ={})
    assert config.interval == 1.0
    assert "containers" in config.inputs and "prometheus" in config.outputs


def test_a_plugin_section_overrides_only_the_plugins_it_names(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "inputs:\n  containers: false\n  udp: {listen: '127.0.0.1:0'}\n"
        "outputs:\n  influxdb: {url: 'http://127.0.0.1:1'}\n"
    )
    config = load_config(path, environ={})
    assert config.inputs == {
        "containers": False,
        "node": {},
        "probes": {},
        "scrape": {},
        "udp": {"listen": "127.0.0.1:0"},
    }
    assert config.outputs == {"prometheus": {}, "influxdb": {"url": "http://127.0.0.1:1"}}
    path.write_text("outputs:\n  prometheus: false\n")
    assert load_config(path, environ={}).outputs == {"prometheus": False}


def test_env_overrides_file_and_nest(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("interval: 5\noutputs:\n  prometheus:\n    listen: 127.0.0.1:1\n")
    env = {
        "EBBFLOW_INTERVAL": "2",
        "EBBFLOW_OUTPUTS__PROMETHEUS__LISTEN": "127.0.0.1:9",
        "UNRELATED": "x",
    }
    config = load_config(path, environ=env)
    assert config.interval == 2
    assert config.outputs["prometheus"] == {"listen": "127.0.0.1:9"}


def test_env_values_read_as_yaml_scalars() -> None:
    env = {"EBBFLOW_DRY_RUN": "true", "EBBFLOW_INPUTS__CONTAINERS": "false"}
    assert env_overrides(env, ["dry_run", "inputs"]) == {
        "dry_run": True,
        "inputs": {"containers": False},
    }


def test_env_names_outside_the_config_are_not_config() -> None:
    env = {"EBBFLOW_TEST_IMAGE": "img", "EBBFLOW_KEEP_ENGINE": "1", "EBBFLOW_INTERVAL": "3"}
    assert load_config(None, environ=env).interval == 3
    with pytest.raises(ConfigError, match=r"docker\.timeoutt"):
        load_config(None, environ={"EBBFLOW_DOCKER__TIMEOUTT": "3"})


def test_bad_value_names_file_field_and_value(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("interval: -1\ndocker:\n  timeout: soon\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert str(path) in text
    assert "interval" in text and "-1" in text
    assert "docker.timeout" in text and "'soon'" in text


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("intreval: 1\n")
    with pytest.raises(ConfigError, match="intreval"):
        load_config(path, environ={})


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, environ={})


def test_a_config_path_to_something_endless_is_refused_within_its_bound(tmp_path: Path) -> None:
    """A wrong path (a device, a log) is read up to the bound, never into memory whole."""
    with pytest.raises(ConfigError, match=r"config: /dev/zero is larger than 4194304 bytes"):
        load_config(Path("/dev/zero"), environ={})
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (4 << 20) + b"\n")
    with pytest.raises(ConfigError, match=f"config: {big} is larger than"):
        load_config(big, environ={})
    with pytest.raises(ConfigError, match=r"w: /dev/zero is larger than 1048576 bytes"):
        load_web_config(Path("/dev/zero"), "w")


def test_scope_covers_projects_by_glob_and_labels_all() -> None:
    from ebbflow.config import ScopeConfig

    everything = ScopeConfig()
    assert everything.everything and everything.covers({})
    shop = ScopeConfig(projects=("shop*",), labels={"team": "a"})
    assert shop.covers({"com.docker.compose.project": "shop-eu", "team": "a"})
    assert shop.covers({"com.docker.stack.namespace": "shop", "team": "a"})  # a Swarm stack
    assert not shop.covers({"com.docker.compose.project": "shop", "team": "b"})
    assert not shop.covers({"com.docker.compose.project": "blog", "team": "a"})
    assert not shop.covers({"team": "a"})  # no project at all
    assert shop.describe() == "projects shop* and team=a"


def test_container_labels_to_export_are_config() -> None:
    assert load_config(None, environ={}).container_labels == ()
    env = {"EBBFLOW_CONTAINER_LABELS": "[org.label-schema.group]"}
    assert load_config(None, environ=env).container_labels == ("org.label-schema.group",)
