"""ebbflow's engine against the HPA reference, on the same traces and the same model.

Run: .venv/bin/python benchmarks/replay/compare.py [--json] [--start-delay 5]
Prints one row per trace and autoscaler, then the goals:
ebbflow ≥ 30 % fewer violation seconds with no more replica seconds on every trace, and
at most 1 reversal per 10 minutes on the square wave.
"""

from __future__ import annotations

import argparse
import json

from hpa import HPA  # run as a script: its folder comes first on the path
from traces import DURATION, TRACES

from ebbflow.rules.replay import EngineAutoscaler, simulate

MAX_REPLICAS = 20
# ebbflow's default policy at target 70 %: nothing but the target and the same bounds.
EBBFLOW_LABELS = {
    "ebbflow.scale.target": "70",
    "ebbflow.scale.max_replicas": str(MAX_REPLICAS),
}


def run(start_delay: float) -> dict[str, dict[str, dict[str, float]]]:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, make in TRACES.items():
        trace = make()
        hpa = simulate(trace, HPA(target=70, max_replicas=MAX_REPLICAS), 1, start_delay)
        ebb = simulate(trace, EngineAutoscaler(EBBFLOW_LABELS), 1, start_delay)
        table[name] = {"hpa": vars(hpa.summary), "ebbflow": vars(ebb.summary)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-delay", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    table = run(args.start_delay)
    if args.json:
        print(json.dumps(table, indent=1))
        return
    print(
        f"{'trace':<12} {'scaler':<8} {'violation_s':>11} {'unserved':>9} "
        f"{'replica_s':>9} {'actions':>7} {'reversals':>9}"
    )
    ok = True
    for name, rows in table.items():
        for scaler, s in rows.items():
            print(
                f"{name:<12} {scaler:<8} {s['violation_seconds']:>11} "
                f"{s['unserved_core_seconds']:>9.0f} {s['replica_seconds']:>9} "
                f"{s['actions']:>7} {s['reversals']:>9}"
            )
        hpa, ebb = rows["hpa"], rows["ebbflow"]
        fewer = 1 - ebb["violation_seconds"] / max(1, hpa["violation_seconds"])
        replicas = ebb["replica_seconds"] / hpa["replica_seconds"]
        good = fewer >= 0.30 and replicas <= 1.0
        ok &= good
        print(
            f"{'':<12} {'→':<8} {fewer:>10.0%} fewer violation seconds, replica seconds "
            f"×{replicas:.3f} {'ok' if good else 'MISSED'}"
        )
    square = table["square_wave"]["ebbflow"]["reversals"] / (DURATION / 600)
    ok &= square <= 1
    print(f"square wave: {square:.2f} reversals per 10 minutes {'ok' if square <= 1 else 'MISSED'}")
    print("all goals met" if ok else "GOALS MISSED")


if __name__ == "__main__":
    main()
