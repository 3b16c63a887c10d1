"""ebbflow's default policy against the four references (HPA, KPA, Nomad's target-value,
AWS target tracking), every trace at every start delay.

Run: .venv/bin/python benchmarks/replay/compare.py [--json|--markdown] [--start-delay S ...]
[--trace T ...]. Prints one row per trace, start delay and autoscaler, and under each what
ebbflow missed of the goals (rules/references.py: `goals_missed`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass

from traces import STARTUP_FACTORS, STEPS, TRACES, delays_of  # run as a script: its folder first

from ebbflow.rules.references import REFERENCES, Miss, misses, reversals_allowed
from ebbflow.rules.replay import EngineAutoscaler, Summary, simulate

MAX_REPLICAS = 20
TARGET = 70.0
# ebbflow's default policy at target 70 %: nothing but the target and the same bounds.
EBBFLOW_LABELS = {
    "ebbflow.scale.target": f"{TARGET:g}",
    "ebbflow.scale.max_replicas": str(MAX_REPLICAS),
}
NAMES = ("ebbflow", *REFERENCES)


@dataclass(frozen=True)
class Row:
    trace: str
    start_delay: float
    duration: int
    ebbflow: Summary
    references: dict[str, Summary]

    @property
    def misses(self) -> list[Miss]:
        return misses(self.ebbflow, self.references, self.duration)

    @property
    def missed(self) -> list[str]:
        return [miss.text for miss in self.misses]

    @property
    def key(self) -> str:
        return f"{self.trace}@{self.start_delay:g}"

    def summaries(self) -> dict[str, Summary]:
        return {"ebbflow": self.ebbflow, **self.references}


def warm_start(trace: list[tuple[int, float]]) -> int:
    """All start at the count the first second's demand needs at the target: a service
    already running when the trace begins. From one replica, the first start-up's unserved
    load is the same for any autoscaler and would hide the decisions being compared."""
    return max(1, math.ceil(trace[0][1] / (TARGET / 100)))


def run_one(name: str, start_delay: float) -> Row:
    trace = TRACES[name]()
    factor = STARTUP_FACTORS.get(name)
    delay = (lambda t: start_delay * factor(t)) if factor else start_delay
    initial, steps = warm_start(trace), STEPS.get(name, ())
    references = {
        ref: simulate(trace, make(TARGET, 1, MAX_REPLICAS), initial, delay, steps).summary
        for ref, make in REFERENCES.items()
    }
    ebb = simulate(trace, EngineAutoscaler(EBBFLOW_LABELS), initial, delay, steps)
    return Row(name, start_delay, len(trace), ebb.summary, references)


def run(delays: tuple[float, ...] = (), traces: tuple[str, ...] = tuple(TRACES)) -> list[Row]:
    return [run_one(name, delay) for name in traces for delay in delays or delays_of(name)]


def _cell(values: list[str]) -> str:
    return f"**{values[0]}** · " + " / ".join(values[1:])


def markdown(rows: list[Row]) -> str:
    refs = " / ".join(REFERENCES)
    lines = [
        f"| trace | start | violation s: **ebbflow** · {refs} | replica s: **ebbflow** · {refs} "
        f"| reversals: **ebbflow** · {refs} (allowed) | slack | reaction s | goals |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        s = list(r.summaries().values())
        allowed = reversals_allowed(r.references, r.duration)
        reaction = (
            _cell([f"{x.reaction:.0f}" if x.reaction is not None else "—" for x in s])
            if r.ebbflow.reactions
            else ""
        )
        lines.append(
            f"| {r.trace.replace('_', ' ')} | {r.start_delay:g} s "
            f"| {_cell([str(x.violation_seconds) for x in s])} "
            f"| {_cell([str(x.replica_seconds) for x in s])} "
            f"| {_cell([str(x.reversals) for x in s])} ({allowed}) "
            f"| {_cell([f'{x.slack:.0%}' for x in s])} | {reaction} "
            f"| {'met' if not r.missed else 'missed: ' + '; '.join(r.missed)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--start-delay", type=float, action="append", dest="delays")
    parser.add_argument("--trace", action="append", dest="traces", choices=sorted(TRACES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="the table of the README")
    parser.add_argument(
        "--codes",
        action="store_true",
        help="each row's missed goals: tests/rules/reference_goals.json",
    )
    args = parser.parse_args()
    rows = run(tuple(args.delays or ()), tuple(args.traces or TRACES))
    if args.markdown:
        print(markdown(rows))
    elif args.codes:
        lines = [f"  {json.dumps(r.key)}: {json.dumps([m.code for m in r.misses])}" for r in rows]
        print("{\n" + ",\n".join(lines) + "\n}")
    elif args.json:
        out = [
            {
                "trace": r.trace,
                "start_delay": r.start_delay,
                "duration": r.duration,
                **{name: {**asdict(x), "slack": x.slack} for name, x in r.summaries().items()},
                "missed": r.missed,
            }
            for r in rows
        ]
        print(json.dumps(out, indent=1))
    else:
        print(
            f"{'trace':<21} {'start':>5} {'scaler':<8} {'violation_s':>11} {'unserved':>9} "
            f"{'replica_s':>9} {'actions':>7} {'reversals':>9} {'slack':>6} {'reaction':>8}"
        )
        for r in rows:
            for scaler, s in r.summaries().items():
                reaction = f"{s.reaction:.0f}" if s.reaction is not None else "—"
                print(
                    f"{r.trace:<21} {r.start_delay:>5g} {scaler:<8} {s.violation_seconds:>11} "
                    f"{s.unserved_core_seconds:>9.0f} {s.replica_seconds:>9} "
                    f"{s.actions:>7} {s.reversals:>9} {s.slack:>6.1%} {reaction:>8}"
                )
            print(f"{'':<27} → {'; '.join(r.missed) or 'every goal met'}")
    met = sum(1 for r in rows if not r.missed)
    print(f"{met} of {len(rows)} rows meet every goal", file=sys.stderr)
    return 0 if met == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
