"""What `/readyz` and `ebbflow status` say: every part's own word on whether it works.

Parts report a problem (a short sentence) or None; the process is ready when none of
them reports one. The supervisor is one such source (a component that is down or was
given up on); the engine connection, the rule engine and each output are others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ebbflow.metrics import Desc
from ebbflow.model import Sample

log = logging.getLogger("ebbflow.health")

Check = Callable[[], dict[str, str]]  # part name → what is wrong with it

ROLE = Desc(
    "ebbflow_role",
    "What this process does (`ebbflow run --role`): all, agent or decider; always 1.",
    "gauge",
    ("role",),
)
READY = Desc("ebbflow_ready", "1 when every part works (what /readyz says), else 0.")
DEPENDENCY_UP = Desc(
    "ebbflow_dependency_up",
    "1 while a dependency answers (an engine, the state file, an output, a webhook target, "
    "the lease); 0 while /readyz names it.",
    "gauge",
    ("dependency",),
)


@runtime_checkable
class ReportsDependencies(Protocol):
    """Optional hook: the outside things a part depends on (an engine, the state file, an
    output's server, a webhook target, the lease), each up (None) or down with why."""

    def dependencies(self) -> dict[str, str | None]: ...


@runtime_checkable
class ReportsHealth(Protocol):
    """Optional hook: what is wrong with the part now, or None when it works."""

    name: str

    def health_problem(self) -> str | None: ...


@dataclass(frozen=True)
class HealthReport:
    ready: bool
    problems: dict[str, str]
    components: dict[str, dict[str, Any]]
    dependencies: dict[str, str | None] = field(default_factory=dict)
    role: str = "all"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "not ready",
            "role": self.role,
            "problems": self.problems,
            "dependencies": {
                name: {"up": problem is None, "reason": problem or ""}
                for name, problem in sorted(self.dependencies.items())
            },
            "components": self.components,
        }


class Health:
    def __init__(self, role: str = "all") -> None:
        self.role = role  # what this process does: all, agent or decider (`--role`)
        self._checks: list[Check] = []
        self._parts: list[ReportsHealth] = []
        self._dependencies: list[ReportsDependencies] = []
        self.components: Callable[[], dict[str, dict[str, Any]]] = dict
        self._last_problems: dict[str, str] = {}

    def add_check(self, check: Check) -> None:
        self._checks.append(check)

    def add_part(self, part: ReportsHealth) -> None:
        self._parts.append(part)

    def add_dependencies(self, part: ReportsDependencies) -> None:
        self._dependencies.append(part)

    def dependencies(self) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for part in self._dependencies:
            try:
                found.update(part.dependencies())
            except Exception as err:  # a broken hook is itself a problem, never "up"
                found[type(part).__name__] = f"health check raised {type(err).__name__}: {err}"
        return found

    def problems(self, dependencies: dict[str, str | None] | None = None) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, problem in (
            self.dependencies() if dependencies is None else dependencies
        ).items():
            if problem:
                found[name] = problem
        for check in self._checks:
            found.update(check())
        for part in self._parts:
            try:
                problem = part.health_problem()
            except Exception as err:  # a broken hook is itself a problem, never "ready"
                problem = f"health check raised {type(err).__name__}: {err}"
            if problem:
                found.setdefault(part.name, problem)
        return found

    def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether every part works, and what is wrong by part (the status page's line)."""
        report = self.report()
        return report.ready, report.problems

    def report(self) -> HealthReport:
        dependencies, problems = self._judge()
        return HealthReport(not problems, problems, self.components(), dependencies, self.role)

    def _judge(self) -> tuple[dict[str, str | None], dict[str, str]]:
        """Dependencies and problems now; a change of problems is logged."""
        dependencies = self.dependencies()
        problems = self.problems(dependencies)
        if problems != self._last_problems:  # log on change, not on every ask
            if problems:
                log.warning(
                    "not ready: %s", "; ".join(f"{k}: {v}" for k, v in sorted(problems.items()))
                )
            elif self._last_problems:
                log.info("ready again")
            self._last_problems = problems
        return dependencies, problems

    def telemetry(self, now: float) -> Iterable[Sample]:
        # Not `report()`: the components' copies it makes are for /readyz, not the metrics
        # (they were a quarter of a telemetry round).
        dependencies, problems = self._judge()
        yield READY.sample(0.0 if problems else 1.0, now)
        yield ROLE.sample(1.0, now, self.role)
        for name, problem in sorted(dependencies.items()):
            yield DEPENDENCY_UP.sample(0.0 if problem else 1.0, now, name)
