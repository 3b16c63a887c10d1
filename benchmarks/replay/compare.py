"""ebbflow's default policy against the HPA reference, every trace at every start delay.

Run: .venv/bin/python benchmarks/replay/compare.py [--json] [--start-delay S ...] [--trace T ...]
Prints one row per trace, start delay and autoscaler, and under each pair what it missed
of the goals (rules/replay.py: `goals_missed`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass

from traces import START_DELAYS, STARTUP_FACTORS, TRACES  # run as a script: its folder first

from ebbflow.rules.hpa import HPA
from ebbflow.rules.replay import EngineAutoscaler, Summary, goals_missed, simulate

MAX_REPLICAS = 20
TARGET = 70.0
# ebbflow's default policy at target 70 %: nothing but the target and the same bounds.
EBBFLOW_LABELS = {
    "ebbflow.scale.target": f"{TARGET:g}",
    "ebbflow.scale.max_replicas": str(MAX_REPLICAS),
}


@dataclass(frozen=True)
class Row:
    trace: str
    start_delay: float
    duration: int
    hpa: Summary
    ebbflow: Summary

    @property
    def missed(self) -> list[str]:
        return goals_missed(self.ebbflow, self.hpa, self.duration)


def warm_start(trace: list[tuple[int, float]]) -> int:
    """Both start at the count the first second's demand needs at the target: a service
    already running when the trace begins. From one replica, the first start-up's unserved
    load is the same for any autoscaler and would hide the decisions being compared."""
    return max(1, math.ceil(trace[0][1] / (TARGET / 100)))


def run_one(name: str, start_delay: float) -> Row:
    trace = TRACES[name]()
    factor = STARTUP_FACTORS.get(name)
    delay = (lambda t: start_delay * factor(t)) if factor else start_delay
    initial = warm_start(trace)
    hpa = simulate(trace, HPA(target=TARGET, max_replicas=MAX_REPLICAS), initial, delay)
    ebb = simulate(trace, EngineAutoscaler(EBBFLOW_LABELS), initial, delay)
    return Row(name, start_delay, len(trace), hpa.summary, ebb.summary)


def run(
    start_delays: tuple[float, ...] = START_DELAYS, traces: tuple[str, ...] = tuple(TRACES)
) -> list[Row]:
    return [run_one(name, delay) for name in traces for delay in start_delays]


def markdown(rows: list[Row]) -> str:
    lines = [
        "| trace | start | violation s HPA → ebbflow | replica s HPA → ebbflow | "
        "reversals HPA → ebbflow (allowed) | goals |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        h, e = r.hpa, r.ebbflow
        fewer = (
            f"{e.violation_seconds / h.violation_seconds - 1:+.0%}" if h.violation_seconds else "—"
        )
        allowed = max(h.reversals, r.duration // 600)
        lines.append(
            f"| {r.trace.replace('_', ' ')} | {r.start_delay:g} s | {h.violation_seconds} → "
            f"**{e.violation_seconds}** ({fewer}) | {h.replica_seconds} → "
            f"**{e.replica_seconds}** (×{e.replica_seconds / h.replica_seconds:.3f}) | "
            f"{h.reversals} → **{e.reversals}** ({allowed}) | "
            f"{'met' if not r.missed else 'MISSED: ' + '; '.join(r.missed)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-delay", type=float, action="append", dest="delays")
    parser.add_argument("--trace", action="append", dest="traces", choices=sorted(TRACES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="the table of the README")
    args = parser.parse_args()
    rows = run(tuple(args.delays or START_DELAYS), tuple(args.traces or TRACES))
    if args.markdown:
        print(markdown(rows))
        return 0 if not any(r.missed for r in rows) else 1
    if args.json:
        print(json.dumps([{**asdict(r), "missed": r.missed} for r in rows], indent=1))
        return 0 if not any(r.missed for r in rows) else 1
    print(
        f"{'trace':<14} {'start':>5} {'scaler':<8} {'violation_s':>11} {'unserved':>9} "
        f"{'replica_s':>9} {'actions':>7} {'reversals':>9}"
    )
    for r in rows:
        for scaler, s in (("hpa", r.hpa), ("ebbflow", r.ebbflow)):
            print(
                f"{r.trace:<14} {r.start_delay:>5g} {scaler:<8} {s.violation_seconds:>11} "
                f"{s.unserved_core_seconds:>9.0f} {s.replica_seconds:>9} "
                f"{s.actions:>7} {s.reversals:>9}"
            )
        fewer = 1 - r.ebbflow.violation_seconds / max(1, r.hpa.violation_seconds)
        ratio = r.ebbflow.replica_seconds / r.hpa.replica_seconds
        verdict = "; ".join(r.missed) or "ok"
        change = f"{fewer:.0%} fewer" if fewer >= 0 else f"{-fewer:.0%} more"
        print(f"{'':<20} → {change} violation s, replica s ×{ratio:.3f}: {verdict}")
    missed = sum(1 for r in rows if r.missed)
    print(f"{len(rows) - missed} of {len(rows)} rows meet every goal")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
