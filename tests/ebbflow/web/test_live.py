"""The web config followed while it changes: read once a change held still for a look,
a bad change kept out and said. With a server and real certificates:
tests/exporters/prometheus/test_web_config.py."""

from __future__ import annotations

import os
from pathlib import Path

from ebbflow.web.live import LiveWebConfig

HASH = "$2y$10$" + "a" * 53  # the shape of a bcrypt hash (never checked here)


def touch(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(tick * 10**9, tick * 10**9))  # a new mtime, whatever the clock


def ok_value(live: LiveWebConfig) -> float:
    return {s.name: s.value for s in live.telemetry(0.0, "prometheus")}[
        "ebbflow_web_config_last_reload_successful"
    ]


def test_a_change_is_read_once_it_held_still_for_a_look(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    touch(path, "{}\n", 1)
    live = LiveWebConfig(path, "w")
    assert live.check() is False and live.config.basic_auth_users == {}
    touch(path, f"basic_auth_users:\n  alice: '{HASH}'\n", 2)
    assert live.check() is False and live.config.basic_auth_users == {}  # seen changing
    assert live.check() is False and live.config.basic_auth_users == {"alice": HASH}
    assert live.ok and ok_value(live) == 1.0


def test_a_bad_or_emptied_file_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    touch(path, f"basic_auth_users:\n  alice: '{HASH}'\n", 1)
    live = LiveWebConfig(path, "w")
    changes = (
        (2, "basic_auth_users: [", "not YAML"),
        (3, "", "is empty"),
        (4, "basic_auth_users:\n  bob: plain\n", "not a bcrypt hash"),
    )
    for tick, text, said in changes:
        touch(path, text, tick)
        live.check()
        live.check()
        assert not live.ok and said in live.error
        assert live.config.basic_auth_users == {"alice": HASH}
        assert ok_value(live) == 0.0
    path.unlink()
    live.check()
    live.check()
    assert not live.ok and "cannot read" in live.error
    touch(path, "{}\n", 5)
    live.check()
    assert live.check() is False and live.ok and live.config.basic_auth_users == {}
