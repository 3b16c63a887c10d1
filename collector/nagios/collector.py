"""The nagios input: each configured check command on its own interval, no shell."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterable

from ebbflow.bus import Bus
from ebbflow.logs import describe_error
from ebbflow.metrics import Desc
from ebbflow.model import Sample, labels_of

from ..base import PollingInput
from .config import NagiosCheckConfig
from .perfdata import STATES, Range, parse_perfdata, split_output

PERFDATA_ERRORS = Desc(
    "ebbflow_nagios_perfdata_errors_total",
    "Perfdata items a check printed that were not valid (left out).",
    "counter",
    ("check",),
)
TRUNCATED = Desc(
    "ebbflow_nagios_output_truncated_total",
    "Plugin outputs cut at the check's max_output bytes (the rest read and dropped).",
    "counter",
    ("check",),
)

log = logging.getLogger("ebbflow.collector.nagios")

# perfdata UOM → (scale to the base unit, the base unit named in the `unit` label)
UNITS: dict[str, tuple[float, str]] = {
    "s": (1.0, "s"),
    "ms": (1e-3, "s"),
    "us": (1e-6, "s"),
    "B": (1.0, "B"),
    "KB": (1e3, "B"),
    "MB": (1e6, "B"),
    "GB": (1e9, "B"),
    "TB": (1e12, "B"),
}
GRACE = 2.0  # seconds past a check's timeout before its cycle itself is given up
ERROR_HELP = (
    "Why the check has no result of its own (its state is 3): timeout, not_found, "
    "not_executable, failed_to_start, killed (by a signal) or bad_exit_code."
)


def threshold_samples(name: str, limit: Range | None) -> list[tuple[str, float]]:
    """`_warning` is a range's high end, `_warning_low` its low end (when it has one:
    `10:`, `10:20`, `@10:20`), `_warning_inside` 1 for an `@` range (alert inside it)."""
    if limit is None:
        return []
    out = [(f"_{name}", limit.high)] if math.isfinite(limit.high) else []
    if math.isfinite(limit.low) and (limit.low != 0 or limit.inside):
        out.append((f"_{name}_low", limit.low))
    if limit.inside:
        out.append((f"_{name}_inside", 1.0))
    return out


class NagiosCheck(PollingInput):
    """One check command: exit code → state, perfdata → samples. The command runs in its
    own process group, and the whole group is killed at the timeout: a plugin's children
    never outlive it."""

    def __init__(
        self, bus: Bus, check: NagiosCheckConfig, interval: float, clock: Callable[[], float]
    ) -> None:
        super().__init__(bus, check.interval or interval, check.timeout + GRACE, clock)
        self.check = check
        self.name = f"nagios:{check.name}"
        self.state = -1
        self.perfdata_errors = 0
        self.truncated = 0  # outputs cut at max_output
        self.truncated_now = False

    async def run_command(self) -> tuple[int, str, float]:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *self.check.command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(self.check.timeout):
                stdout = await self._bounded_output(proc)
                await proc.wait()
        except BaseException:  # timed out or cancelled: the process group is ours to stop
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):  # a child that left the group keeps
                async with asyncio.timeout(GRACE):  # the pipe open: not waited for
                    await proc.wait()
            raise
        code = proc.returncode if proc.returncode is not None else 3
        return code, stdout.decode(errors="replace"), time.perf_counter() - started

    async def _bounded_output(self, proc: asyncio.subprocess.Process) -> bytes:
        """At most `max_output` bytes of the plugin's output; the rest is drained."""
        assert proc.stdout is not None
        kept = bytearray()
        limit = self.check.max_output
        while chunk := await proc.stdout.read(65536):
            if len(kept) < limit:
                kept += chunk[: limit - len(kept)]
            elif not self.truncated_now:
                self.truncated_now = True
        if self.truncated_now:
            self.truncated += 1
            self.truncated_now = False
        return bytes(kept)

    async def result(self) -> tuple[int, str, str, float]:
        """(state, output, why ebbflow has no result of the plugin's own or "", seconds)."""
        command = self.check.command[0]
        started = time.perf_counter()
        try:
            code, stdout, duration = await self.run_command()
        except TimeoutError:
            took = time.perf_counter() - started
            return 3, f"UNKNOWN - killed after {self.check.timeout:g}s", "timeout", took
        except FileNotFoundError:
            return 3, f"UNKNOWN - {command}: not found", "not_found", 0.0
        except PermissionError:
            return 3, f"UNKNOWN - {command}: not executable", "not_executable", 0.0
        except OSError as err:
            return 3, f"UNKNOWN - {command}: {err.strerror}", "failed_to_start", 0.0
        if code < 0:
            return 3, f"UNKNOWN - killed by signal {-code}", "killed", duration
        if code not in STATES:
            return 3, f"UNKNOWN - exit code {code}\n{stdout}", "bad_exit_code", duration
        return code, stdout, "", duration

    async def fetch(self) -> list[Sample]:
        code, stdout, reason, duration = await self.result()
        text, perf = split_output(stdout)
        if code != self.state:
            level = logging.INFO if code == 0 else logging.WARNING
            log.log(level, "check %s is %s: %s", self.check.name, STATES[code].upper(), text)
            self.state = code
        values, problems = parse_perfdata(perf)
        if problems:
            self.perfdata_errors += len(problems)
            log.debug("check %s: perfdata: %s", self.check.name, "; ".join(problems))
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
        if reason:
            samples.append(
                Sample(
                    "nagios_check_error_info",
                    1.0,
                    labels_of({**check, "reason": reason}),
                    now,
                    "gauge",
                    ERROR_HELP,
                )
            )
        for value in values:
            scale, unit = UNITS.get(value.unit, (1.0, value.unit))
            labels = labels_of({**check, "label": value.label, "unit": unit})
            numbers = [
                ("", value.value),
                *threshold_samples("warning", value.warning),
                *threshold_samples("critical", value.critical),
                ("_min", value.minimum),
                ("_max", value.maximum),
            ]
            for suffix, number in numbers:
                if number is None:
                    continue
                if not suffix.endswith("_inside"):
                    number *= scale
                samples.append(
                    Sample(
                        f"nagios_perfdata{suffix}",
                        number,
                        labels,
                        now,
                        "gauge",
                        "Nagios perfdata, in base units (the `unit` label).",
                    )
                )
        return samples

    def telemetry(self, now: float) -> Iterable[Sample]:
        yield from super().telemetry(now)
        yield PERFDATA_ERRORS.sample(self.perfdata_errors, now, self.check.name)
        yield TRUNCATED.sample(self.truncated, now, self.check.name)


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
        """Every check once, each on its own: a slow or failing one costs only its result."""
        results = await asyncio.gather(*(c.fetch() for c in self.checks), return_exceptions=True)
        samples: list[Sample] = []
        for check, result in zip(self.checks, results, strict=True):
            if isinstance(result, BaseException):
                log.error("check %s raised: %s", check.check.name, describe_error(result))
                continue
            samples += result
        return samples

    def telemetry(self, now: float) -> Iterable[Sample]:
        for check in self.checks:
            yield from check.telemetry(now)
