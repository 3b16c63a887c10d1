import asyncio
from pathlib import Path

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.nagios import NagiosCheckConfig
from ebbflow.collector.nagios.collector import NagiosCheck
from ebbflow.collector.nagios.perfdata import parse_perfdata, split_output


def test_perfdata_items() -> None:
    values, problems = parse_perfdata(
        "time=0.016s;1.0;2.0;0; 'disk used'=83%;80;90;0;100 size=12KB load=@10:20 bad=x"
    )
    by = {v.label: v for v in values}
    assert (
        by["time"].value,
        by["time"].unit,
        by["time"].warning,
        by["time"].critical,
        by["time"].minimum,
        by["time"].maximum,
    ) == (0.016, "s", 1.0, 2.0, 0.0, None)
    assert (by["disk used"].value, by["disk used"].unit, by["disk used"].maximum) == (
        83.0,
        "%",
        100.0,
    )
    assert by["size"].unit == "KB"
    assert problems == ["load: value '@10:20' is not a number", "bad: value 'x' is not a number"]


def test_output_text_and_multiline_perfdata() -> None:
    text, perf = split_output("DISK OK - free space | a=1\nmore text | b=2\n")
    assert (text, perf) == ("DISK OK - free space", "a=1 b=2")


def plugin(tmp_path: Path, body: str) -> str:
    script = tmp_path / "check_thing"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


async def test_a_plugin_script_state_and_perfdata(tmp_path: Path) -> None:
    cmd = plugin(tmp_path, "echo 'THING WARNING - slow | time=250ms;200;500;0 rss=64MB'\nexit 1\n")
    check = NagiosCheck(Bus(), NagiosCheckConfig(name="thing", command=(cmd,)), 10, lambda: 5.0)
    samples = {(s.name, s.label("label")): s for s in await check.fetch()}
    assert samples[("nagios_state", "")].value == 1
    assert samples[("nagios_perfdata", "time")].value == pytest.approx(0.25)  # base units
    assert samples[("nagios_perfdata_warning", "time")].value == pytest.approx(0.2)
    assert samples[("nagios_perfdata_critical", "time")].value == pytest.approx(0.5)
    assert samples[("nagios_perfdata", "rss")].value == 64e6
    assert samples[("nagios_perfdata", "rss")].label("unit") == "MB"


async def test_a_hung_plugin_is_killed_and_reported(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    cmd = plugin(tmp_path, f"sleep 5; touch {marker}\n")
    check = NagiosCheck(
        Bus(), NagiosCheckConfig(name="hang", command=(cmd,), timeout=0.3), 10, lambda: 5.0
    )
    assert await check.cycle() is None
    assert check.last_error == "timed out after 0.3s"
    await asyncio.sleep(0.2)
    assert not marker.exists()


async def test_odd_exit_codes_and_missing_commands_are_unknown(tmp_path: Path) -> None:
    odd = NagiosCheck(
        Bus(), NagiosCheckConfig(name="odd", command=(plugin(tmp_path, "exit 7"),)), 10, lambda: 0.0
    )
    missing = NagiosCheck(
        Bus(), NagiosCheckConfig(name="m", command=("/nonexistent/check",)), 10, lambda: 0.0
    )
    for check in (odd, missing):
        states = [s.value for s in await check.fetch() if s.name == "nagios_state"]
        assert states == [3]
