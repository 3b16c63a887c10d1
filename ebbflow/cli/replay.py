"""`ebbflow replay`: the rule engine against a demand trace on a virtual clock, beside the
references (HPA, KPA, Nomad's target-value, AWS target tracking) on the same trace."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ebbflow.config import AppConfig, ConfigError
from ebbflow.rules.references import GOALS, goals_missed, run_references
from ebbflow.rules.replay import Summary, load_labels, load_trace, replay


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    command = sub.add_parser(
        "replay", parents=[common], help="run the engine against a demand trace on a virtual clock"
    )
    command.add_argument("trace", type=Path, help="CSV with columns t,demand (cores, 1 s steps)")
    command.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="the service's labels: YAML mapping or key=value lines",
    )
    command.add_argument(
        "--start-delay",
        type=float,
        default=5.0,
        help="seconds from a decision until a new replica is ready",
    )
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace, config: AppConfig) -> int:
    try:
        demand, service = load_trace(args.trace), load_labels(args.labels)
        result = replay(demand, service, args.start_delay, config.rules)
        references = run_references(demand, service, args.start_delay, config.rules)
    except (OSError, ValueError) as err:
        raise ConfigError(str(err)) from None
    summaries = references.summaries()
    missed = goals_missed(result.summary, summaries, len(demand)) if summaries else None
    if args.json:
        out = result.as_dict()
        out["references"] = {
            name: run.as_dict()["summary"] for name, run in references.runs.items()
        }
        out["references_about"] = references.about
        out["goals_missed"] = missed
        print(json.dumps(out, indent=1))
        return 0
    for d in result.decisions:
        print(f"t={d['t']:>7g}  {d['from']:>3} → {d['to']:<3} {d['reason']}")
    print(f"{'ebbflow':<8} {summary_line(result.summary)}")
    for name, summary in summaries.items():
        print(f"{name:<8} {summary_line(summary)}")
    print(references.about)
    if missed is not None:
        verdict = "met" if not missed else "missed: " + "; ".join(missed)
        print(f"goals ({GOALS}): {verdict}")
    return 0


def summary_line(s: Summary) -> str:
    return (
        f"violation_seconds={s.violation_seconds} unserved_core_seconds="
        f"{s.unserved_core_seconds:.3f} replica_seconds={s.replica_seconds} "
        f"actions={s.actions} reversals={s.reversals} slack={s.slack:.3f}"
    )
