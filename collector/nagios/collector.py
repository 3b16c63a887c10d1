"""The nagios input: each configured check command on its own interval, no shell."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable

from ebbflow.bus import Bus
from ebbflow.model import Sample, labels_of

from ..base import PollingInput
from .config import NagiosCheckConfig
from .perfdata import STATES, parse_perfdata, split_output

log = logging.getLogger("ebbflow.collector.nagios")

UNIT_SCALE = {
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "B": 1.0,
    "KB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "TB": 1e12,
    "%": 1.0,
    "c": 1.0,
    "": 1.0,
}


def metric_label(label: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


class NagiosCheck(PollingInput):
    """One check command: exit code → state, perfdata → samples."""

    def __init__(
        self, bus: Bus, check: NagiosCheckConfig, interval: float, clock: Callable[[], float]
    ) -> None:
        super().__init__(bus, check.interval or interval, check.timeout, clock)
        self.check = check
        self.name = f"nagios:{check.name}"
        self.state = -1

    async def run_command(self) -> tuple[int, str, float]:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *self.check.command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            stdout, _ = await proc.communicate()
        except BaseException:  # timed out or cancelled: the process is ours to stop
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, stdout.decode(errors="replace"), time.perf_counter() - started

    async def fetch(self) -> list[Sample]:
        try:
            code, stdout, duration = await self.run_command()
        except FileNotFoundError:
            code, stdout, duration = 3, f"UNKNOWN - {self.check.command[0]}: not found", 0.0
        code = code if code in STATES else 3
        text, perf = split_output(stdout)
        if code != self.state:
            level = logging.INFO if code == 0 else logging.WARNING
            log.log(level, "check %s is %s: %s", self.check.name, STATES[code].upper(), text)
            self.state = code
        values, problems = parse_perfdata(perf)
        for problem in problems:
            log.debug("check %s: perfdata %s", self.check.name, problem)
        now = self.clock()
        check = {"check": self.check.name}
        samples = [
            Sample(
                "nagios_state",
                code,
                labels_of(check),
                now,
                "gauge",
                "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
            ),
            Sample(
                "nagios_check_duration_seconds",
                duration,
                labels_of(check),
                now,
                "gauge",
                "How long the check command ran.",
            ),
        ]
        for value in values:
            labels = labels_of({**check, "label": metric_label(value.label), "unit": value.unit})
            scale = UNIT_SCALE.get(value.unit, 1.0)
            for suffix, number in (
                ("", value.value),
                ("_warning", value.warning),
                ("_critical", value.critical),
                ("_min", value.minimum),
                ("_max", value.maximum),
            ):
                if number is not None:
                    samples.append(
                        Sample(
                            f"nagios_perfdata{suffix}",
                            number * scale,
                            labels,
                            now,
                            "gauge",
                            "Nagios perfdata, in base units.",
                        )
                    )
        return samples


class NagiosInput:
    """Runs every configured check; a slow check never delays another."""

    name = "nagios"

    def __init__(self, checks: list[NagiosCheck]) -> None:
        self.checks = checks

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for check in self.checks:
                group.create_task(check.run())

    async def collect_once(self) -> list[Sample]:
        results = await asyncio.gather(*(c.collect_once() for c in self.checks))
        return [sample for samples in results for sample in samples]

    def telemetry(self, now: float) -> Iterable[Sample]:
        for check in self.checks:
            yield from check.telemetry(now)
