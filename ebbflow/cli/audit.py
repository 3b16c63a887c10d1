"""`ebbflow decisions`, `healing` and `explain`: the audit log, read only (a missing state
file is an error that names it, never a new empty one)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from ebbflow.config import AppConfig
from ebbflow.services import parse_service_key

from .common import open_store, resolve_service


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    decisions = sub.add_parser("decisions", parents=[common], help="the decision audit log")
    decisions.add_argument("--state", type=Path)
    decisions.add_argument("--service", help="e.g. compose:demo/web")
    decisions.add_argument("--limit", type=int, default=50)
    decisions.add_argument("--json", action="store_true")
    decisions.set_defaults(func=cmd_decisions)

    healing = sub.add_parser(
        "healing", parents=[common], help="the healing audit log: restarts, replacements"
    )
    healing.add_argument("--state", type=Path)
    healing.add_argument("--limit", type=int, default=50)
    healing.add_argument("--json", action="store_true")
    healing.set_defaults(func=cmd_healing)

    explain = sub.add_parser(
        "explain", parents=[common], help="a service's last decisions, their reasons and inputs"
    )
    explain.add_argument("service", help="compose:demo/web, demo/web or web")
    explain.add_argument("--state", type=Path)
    explain.add_argument("--limit", type=int, default=10)
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=cmd_explain)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat(timespec="seconds")


def cmd_decisions(args: argparse.Namespace, config: AppConfig) -> int:
    store = open_store(config)
    try:
        key = parse_service_key(resolve_service(store, args.service)) if args.service else None
        rows = store.recent(args.limit, key)
    finally:
        store.close()
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=1))
        return 0
    for row in reversed(rows):
        outcome = row.outcome or "pending"
        dry = " (dry run)" if row.dry_run else ""
        print(f"{_when(row.timestamp)}  {row.reason}  [{outcome}{dry}: {row.detail or ''}]")
    return 0


def cmd_healing(args: argparse.Namespace, config: AppConfig) -> int:
    store = open_store(config)
    try:
        rows = store.recent_steps(args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in reversed(rows):
        outcome = row["outcome"] + (" (dry run)" if row["dry_run"] else "")
        print(
            f"{_when(row['ts'])}  {row['service']} {row['container']}: {row['action']}"
            f" #{row['attempt']} ({row['reason']})  [{outcome}: {row['detail']}]"
        )
    return 0


def cmd_explain(args: argparse.Namespace, config: AppConfig) -> int:
    store = open_store(config)
    try:
        name = resolve_service(store, args.service)
        rows = store.recent(args.limit, parse_service_key(name))
        steps = store.recent_steps(args.limit, parse_service_key(name))
        startup = store.startup(parse_service_key(name))
    finally:
        store.close()
    if args.json:
        out = {
            "decisions": [row.__dict__ for row in rows],
            "healing": steps,
            "startup": startup.__dict__ if startup else None,
        }
        print(json.dumps(out, indent=1))
        return 0
    if startup is None:
        print(f"{name}: start-up not seen yet; decisions use the policy's guess (startup)")
    else:
        print(
            f"{name}: start-up {startup.seconds:.1f}s, learned from {startup.seen} new "
            f"replica(s) (the newest took {startup.last_seconds:.1f}s, at "
            f"{_when(startup.timestamp)}); capacity is ordered this far ahead"
        )
    print(f"{name}: last {len(rows)} decision(s), newest last")
    for row in reversed(rows):
        print(f"{_when(row.timestamp)}  {row.reason}")
        outcome = row.outcome or "pending"
        print(
            f"    outcome: {outcome}{' (dry run)' if row.dry_run else ''}"
            f"{': ' + row.detail if row.detail else ''}"
        )
        inputs = "  ".join(f"{k}={v:g}" for k, v in sorted(row.inputs.items()))
        print(f"    inputs:  {inputs}")
        if row.owner:
            print(f"    decided by: {row.owner}")
    if steps:
        print(f"{name}: last {len(steps)} healing step(s), newest last")
    for step in reversed(steps):
        outcome = step["outcome"]
        print(f"{_when(step['ts'])}  {step['container']}: {step['action']} #{step['attempt']}")
        print(f"    why:     {step['reason']}")
        print(f"    outcome: {outcome}: {step['detail']}")
    return 0
