import asyncio
import math
from pathlib import Path

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.nagios import NagiosCheckConfig
from ebbflow.collector.nagios.collector import NagiosCheck
from ebbflow.collector.nagios.perfdata import Range, parse_perfdata, parse_range, split_output


def test_perfdata_items() -> None:
    values, problems = parse_perfdata(
        "time=0.016s;1.0;2.0;0; 'disk used'=83%;80;90;0;100 size=12KB load=5;@10:20;~:30 bad=x"
        " 'it''s'=1 time=9 worse=1;x"
    )
    by = {v.label: v for v in values}
    assert (
        by["time"].value,
        by["time"].unit,
        by["time"].warning,
        by["time"].critical,
        by["time"].minimum,
        by["time"].maximum,
    ) == (0.016, "s", Range(0, 1.0), Range(0, 2.0), 0.0, None)
    assert by["load"].warning == Range(10, 20, inside=True)
    assert by["load"].critical == Range(-math.inf, 30)
    assert by["it's"].value == 1
    assert (by["disk used"].value, by["disk used"].unit, by["disk used"].maximum) == (
        83.0,
        "%",
        100.0,
    )
    assert by["size"].unit == "KB"
    assert problems == [
        "bad: value 'x' is not a number",
        "time: given twice; the first value is kept",
        "worse: threshold 'x': 'x' is not a number",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10", Range(0, 10)),
        ("10:", Range(10, math.inf)),
        ("~:10", Range(-math.inf, 10)),
        ("10:20", Range(10, 20)),
        ("@10:20", Range(10, 20, inside=True)),
        ("@5", Range(0, 5, inside=True)),
        ("-5:-1", Range(-5, -1)),
        ("1.5e2", Range(0, 150)),
    ],
)
def test_threshold_ranges_of_the_plugin_guidelines(text: str, expected: Range) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("bad", ["20:10", "a:5", "~:b", "@"])
def test_bad_threshold_ranges(bad: str) -> None:
    with pytest.raises(ValueError, match="threshold"):
        parse_range(bad)


def test_output_text_and_multiline_perfdata() -> None:
    text, perf = split_output("DISK OK - free space | a=1\nmore text | b=2\n")
    assert (text, perf) == ("DISK OK - free space", "a=1 b=2")
    # the guidelines' example: after the long text's `|`, every line is perfdata
    guidelines = (
        "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n"
        "/ 15272 MB (77%);\n"
        "/boot 68 MB (69%);\n"
        "/var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n"
        "/home=69357MB;253404;253409;0;253414\n"
        "/var/log=818MB;970;975;0;980\n"
    )
    text, perf = split_output(guidelines)
    assert text == "DISK OK - free space: / 3326 MB (56%);"
    values, problems = parse_perfdata(perf)
    assert [v.label for v in values] == ["/", "/boot", "/home", "/var/log"] and not problems


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
    assert samples[("nagios_perfdata", "rss")].label("unit") == "B"  # the exported value's
    assert samples[("nagios_perfdata", "time")].label("unit") == "s"


async def test_ranges_and_labels_that_look_alike_stay_apart(tmp_path: Path) -> None:
    cmd = plugin(
        tmp_path,
        "echo 'OK | /var-log=1MB;10:;@2:5 /var_log=2MB;~:8;90 x=3c'\n",
    )
    check = NagiosCheck(Bus(), NagiosCheckConfig(name="t", command=(cmd,)), 10, lambda: 5.0)
    got = {(s.name, s.label("label")): s.value for s in await check.fetch()}
    assert got[("nagios_perfdata", "/var-log")] == 1e6
    assert got[("nagios_perfdata", "/var_log")] == 2e6
    assert got[("nagios_perfdata_warning_low", "/var-log")] == 10e6
    assert ("nagios_perfdata_warning", "/var-log") not in got  # 10: has no high end
    assert got[("nagios_perfdata_critical_low", "/var-log")] == 2e6
    assert got[("nagios_perfdata_critical", "/var-log")] == 5e6
    assert got[("nagios_perfdata_critical_inside", "/var-log")] == 1
    assert got[("nagios_perfdata_warning", "/var_log")] == 8e6
    assert ("nagios_perfdata_warning_low", "/var_log") not in got  # ~: has no low end
    assert got[("nagios_perfdata", "x")] == 3


async def test_a_hung_plugin_is_killed_and_reported(tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    cmd = plugin(tmp_path, f"sleep 5; touch {marker}\n")
    check = NagiosCheck(
        Bus(), NagiosCheckConfig(name="hang", command=(cmd,), timeout=0.3), 10, lambda: 5.0
    )
    samples = await check.cycle()
    assert samples is not None, "a timed-out check is a result: UNKNOWN"
    by = {s.name: s for s in samples}
    assert by["nagios_state"].value == 3
    assert by["nagios_check_error_info"].label("reason") == "timeout"
    assert by["nagios_check_duration_seconds"].value < 2
    await asyncio.sleep(0.2)
    assert not marker.exists()


async def test_odd_exit_codes_and_missing_commands_are_unknown(tmp_path: Path) -> None:
    odd = NagiosCheck(
        Bus(), NagiosCheckConfig(name="odd", command=(plugin(tmp_path, "exit 7"),)), 10, lambda: 0.0
    )
    missing = NagiosCheck(
        Bus(), NagiosCheckConfig(name="m", command=("/nonexistent/check",)), 10, lambda: 0.0
    )
    not_executable = tmp_path / "check_noexec"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    noexec = NagiosCheck(
        Bus(), NagiosCheckConfig(name="n", command=(str(not_executable),)), 10, lambda: 0.0
    )
    for check, reason in (
        (odd, "bad_exit_code"),
        (missing, "not_found"),
        (noexec, "not_executable"),
    ):
        by = {s.name: s for s in await check.fetch()}
        assert by["nagios_state"].value == 3
        assert by["nagios_check_error_info"].label("reason") == reason


async def test_a_plugin_printing_100_megabytes_costs_its_bound_not_its_output() -> None:
    import resource

    check = NagiosCheck(
        Bus(),
        NagiosCheckConfig(
            name="chatty",
            command=("sh", "-c", "echo 'OK - fine | x=1'; head -c 100000000 /dev/zero; exit 0"),
            timeout=30,
        ),
        1.0,
        lambda: 1.0,
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    code, output, _, _ = await check.result()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert code == 0 and output.startswith("OK - fine | x=1")
    assert len(output.encode()) == 8192  # Nagios' own bound, the rest drained
    assert check.truncated == 1
    assert grown < 20 * 1024, f"peak RSS grew {grown} KiB"
