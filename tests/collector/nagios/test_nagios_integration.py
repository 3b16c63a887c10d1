"""Debian's monitoring-plugins-basic (installed by scripts/test) and test scripts through the
nagios input: states, perfdata and ranges of the real plugins; a plugin whose child sleeps
past the timeout is killed with that child (the process table is searched for both);
`collect --once` reports each check on its own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ebbflow.bus import Bus
from ebbflow.collector.nagios import NagiosCheckConfig
from ebbflow.collector.nagios.collector import NagiosCheck
from ebbflow.model import Sample
from tests.conftest import free_port

pytestmark = pytest.mark.integration

PLUGINS = Path("/usr/lib/nagios/plugins")


def real(name: str) -> str:
    path = PLUGINS / name
    assert path.exists(), f"{path}: scripts/test installs monitoring-plugins-basic"
    return str(path)


async def run_check(name: str, *command: str, timeout: float = 10) -> dict[tuple[str, str], Sample]:
    check = NagiosCheck(
        Bus(), NagiosCheckConfig(name=name, command=command, timeout=timeout), 10, time.time
    )
    return {(s.name, s.label("label") or s.label("reason")): s for s in await check.fetch()}


async def test_debian_plugins_states_perfdata_and_ranges() -> None:
    load = await run_check("load", real("check_load"), "-w", "50,40,30", "-c", "60,50,40")
    assert load[("nagios_state", "")].value == 0
    assert load[("nagios_perfdata_warning", "load1")].value == 50
    assert load[("nagios_perfdata_critical", "load15")].value == 40
    assert load[("nagios_perfdata", "load1")].value == pytest.approx(os.getloadavg()[0], abs=0.5)

    disk = await run_check("disk", real("check_disk"), "-w", "1%", "-c", "1%", "-p", "/")
    used = disk[("nagios_perfdata", "/")]
    assert used.label("unit") == "B"
    usage = psutil.disk_usage("/")
    assert disk[("nagios_perfdata_max", "/")].value == pytest.approx(usage.total, rel=0.01)

    # a range: more than 100000 processes is a warning, fewer than 1 critical
    procs = await run_check("procs", real("check_procs"), "-w", "100000", "-c", "1:")
    assert procs[("nagios_state", "")].value == 0
    assert procs[("nagios_perfdata_critical_low", "procs")].value == 1
    assert ("nagios_perfdata_critical", "procs") not in procs

    closed = await run_check("tcp", real("check_tcp"), "-H", "127.0.0.1", "-p", str(free_port()))
    assert closed[("nagios_state", "")].value == 2
    assert ("nagios_check_error_info", "timeout") not in closed  # the plugin's own verdict

    for state in range(4):
        dummy = await run_check("dummy", real("check_dummy"), str(state), "hello")
        assert dummy[("nagios_state", "")].value == state


async def test_a_plugin_whose_child_sleeps_past_the_timeout_is_killed_with_it(
    tmp_path: Path,
) -> None:
    marker = f"ebbflow-nagios-orphan-{os.getpid()}-{time.monotonic_ns()}"
    script = tmp_path / "check_slow"
    script.write_text(f"#!/bin/sh\nsh -c 'sleep 30; : {marker}' &\nwait\n")
    script.chmod(0o755)
    started = time.monotonic()
    got = await run_check("slow", str(script), timeout=1)
    took = time.monotonic() - started
    assert took < 5, took  # the timeout held: not the child's 30 s
    assert got[("nagios_state", "")].value == 3
    assert ("nagios_check_error_info", "timeout") in got
    await asyncio.sleep(0.2)
    left = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if any(marker in part for part in (p.info["cmdline"] or []))
    ]
    assert left == [], "the plugin's child outlived it"


def test_collect_once_reports_each_check_on_its_own(tmp_path: Path) -> None:
    slow = tmp_path / "check_slow"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    config = tmp_path / "ebbflow.yaml"
    checks = [
        {"name": "slow", "command": [str(slow)], "timeout": 1},
        {"name": "dummy", "command": [real("check_dummy"), "1", "warn"]},
        {"name": "missing", "command": ["/nonexistent/check_x"]},
    ]
    off = dict.fromkeys(("containers", "node", "probes", "scrape"), False)
    config.write_text(json.dumps({"inputs": {"nagios": {"checks": checks}, **off}}))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ebbflow", "collect", "--once", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert time.monotonic() - started < 20
    assert done.returncode == 0, done.stderr
    samples = json.loads(done.stdout)
    states = {s["labels"]["check"]: s["value"] for s in samples if s["name"] == "nagios_state"}
    assert states == {"slow": 3, "dummy": 1, "missing": 3}
    errors = {
        s["labels"]["check"]: s["labels"]["reason"]
        for s in samples
        if s["name"] == "nagios_check_error_info"
    }
    assert errors == {"slow": "timeout", "missing": "not_found"}
