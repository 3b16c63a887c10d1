"""The `ebbflow` command: run, status, collect, policies, decisions, healing, explain,
pause, resume, forget, replay, bench."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

from ebbflow.app import build_app, build_context, build_plugins, run_app
from ebbflow.collector.probes.collector import shared_key
from ebbflow.collector.probes.spec import parse_probe
from ebbflow.config import AppConfig, ConfigError, load_config
from ebbflow.logs import setup_logging
from ebbflow.model import ContainerInfo, Sample
from ebbflow.plugins import load_benchmark
from ebbflow.rules.engine import group_services
from ebbflow.rules.replay import (
    GOALS,
    Summary,
    goals_missed,
    hpa_reference,
    load_labels,
    load_trace,
    replay,
)
from ebbflow.services import format_service_key, names_service, parse_service_key
from ebbflow.state import DecisionStore


class EngineUnreachableError(RuntimeError):
    pass


class NotFoundError(RuntimeError):
    """What the command was asked to read is not there."""


def open_store(config: AppConfig) -> DecisionStore:
    """The state of an existing run; reading commands never create one."""
    if not config.state.exists():
        raise NotFoundError(
            f"no state file at {config.state}: `ebbflow run` writes it; --state names another"
        )
    return DecisionStore(config.state)


def resolve_service(store: DecisionStore, service: str) -> str:
    """`compose:demo/web`, `demo/web` or `web`, as the store names it."""
    known = store.services()
    matches = [
        k
        for k in known
        if k == service or k.endswith(":" + service) or k.rsplit("/", 1)[-1] == service
    ]
    if len(matches) != 1:
        listed = ", ".join(known) or "none yet"
        what = "matches several" if matches else "has no decisions"
        raise NotFoundError(f"{service!r} {what} (services with decisions: {listed})")
    return matches[0]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ebbflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ebbflow {version('ebbflow')}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="YAML config file (EBBFLOW_* env overrides it)")
    common.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    scoped = argparse.ArgumentParser(add_help=False)
    scoped.add_argument(
        "--scope-project",
        action="append",
        metavar="GLOB",
        help="act only on this compose project or Swarm stack (repeatable; config: scope)",
    )
    scoped.add_argument(
        "--scope-label",
        action="append",
        metavar="KEY=VALUE",
        help="act only on containers with this label (repeatable: all must match)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", parents=[common, scoped], help="collect, decide and act until stopped"
    )
    run.add_argument("--state", type=Path, help="SQLite state file")
    run.add_argument("--listen", help="HOST:PORT for /metrics")
    run.add_argument("--interval", type=float, help="collection interval, seconds")
    run.add_argument("--dry-run", action="store_true", help="decide and record, change nothing")

    collect = sub.add_parser("collect", parents=[common], help="one cycle of every input")
    collect.add_argument("--once", action="store_true", required=True)
    collect.add_argument("--json", action="store_true")

    policies = sub.add_parser(
        "policies",
        parents=[common, scoped],
        help="discovered services with their policies and errors",
    )
    policies.add_argument("--json", action="store_true")
    policies.add_argument("--state", type=Path, help="read pause and retire state from it")

    bench = sub.add_parser("bench", parents=[common], help="measure a part, side by side")
    bench.add_argument(
        "name",
        help="collect: the containers input vs bare reads vs stats API; "
        "pipeline: samples/s into each output's serializer, /metrics for 100k series",
    )
    bench.add_argument("--cycles", type=int, default=20)
    bench.add_argument("--json", action="store_true")

    decisions = sub.add_parser("decisions", parents=[common], help="the decision audit log")
    decisions.add_argument("--state", type=Path)
    decisions.add_argument("--service", help="e.g. compose:demo/web")
    decisions.add_argument("--limit", type=int, default=50)
    decisions.add_argument("--json", action="store_true")
    healing = sub.add_parser(
        "healing", parents=[common], help="the healing audit log: restarts, replacements"
    )
    healing.add_argument("--state", type=Path)
    healing.add_argument("--limit", type=int, default=50)
    healing.add_argument("--json", action="store_true")

    explain = sub.add_parser(
        "explain", parents=[common], help="a service's last decisions, their reasons and inputs"
    )
    explain.add_argument("service", help="compose:demo/web, demo/web or web")
    explain.add_argument("--state", type=Path)
    explain.add_argument("--limit", type=int, default=10)
    explain.add_argument("--json", action="store_true")

    for verb, text in (
        ("pause", "no actions for a service (scaling, healing, reconcile) until resumed"),
        ("resume", "a paused service is acted on again"),
        ("forget", "drop a service's decisions and desired count"),
    ):
        control = sub.add_parser(verb, parents=[common], help=text)
        control.add_argument("service", help="compose:demo/web, demo/web or web")
        control.add_argument("--state", type=Path)

    status = sub.add_parser(
        "status", parents=[common], help="a running instance's /readyz: what works, what not"
    )
    status.add_argument("--listen", help="HOST:PORT it serves on (default: its config's)")
    status.add_argument("--json", action="store_true")

    replay = sub.add_parser(
        "replay", parents=[common], help="run the engine against a demand trace on a virtual clock"
    )
    replay.add_argument("trace", type=Path, help="CSV with columns t,demand (cores, 1 s steps)")
    replay.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="the service's labels: YAML mapping or key=value lines",
    )
    replay.add_argument(
        "--start-delay",
        type=float,
        default=5.0,
        help="seconds from a decision until a new replica is ready",
    )
    replay.add_argument("--json", action="store_true")
    return parser


def _config(args: argparse.Namespace) -> AppConfig:
    overrides: dict[str, Any] = {}
    if getattr(args, "state", None):
        overrides["state"] = str(args.state)
    if getattr(args, "interval", None):
        overrides["interval"] = args.interval
    if getattr(args, "dry_run", False):
        overrides["dry_run"] = True
    if getattr(args, "listen", None):
        overrides["outputs"] = {"prometheus": {"listen": args.listen}}
    if args.log_level:
        overrides["log_level"] = args.log_level
    scope: dict[str, Any] = {}
    if getattr(args, "scope_project", None):
        scope["projects"] = args.scope_project
    for pair in getattr(args, "scope_label", None) or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--scope-label {pair!r}: expected KEY=VALUE")
        scope.setdefault("labels", {})[key] = value
    if scope:
        overrides["scope"] = scope
    return load_config(args.config, overrides=overrides)


def format_sample(sample: Sample) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sample.labels)
    return (
        f"{sample.name}{{{labels}}} {sample.value!r}"
        if labels
        else f"{sample.name} {sample.value!r}"
    )


async def _collect_once(config: AppConfig) -> tuple[dict[str, list[Sample]], dict[str, str]]:
    """Every enabled input once, concurrently: (samples by input, error by input)."""
    ctx = build_context(config)
    try:
        inputs = build_plugins(ctx, "inputs", config.inputs)
        results = await asyncio.gather(
            *(i.collect_once() for i in inputs.values()), return_exceptions=True
        )
    finally:
        await ctx.nodes.close()
    samples: dict[str, list[Sample]] = {}
    errors: dict[str, str] = {}
    for name, result in zip(inputs, results, strict=True):
        if isinstance(result, BaseException):
            errors[name] = f"{type(result).__name__}: {result}"
        else:
            samples[name] = result
    return samples, errors


def cmd_collect(config: AppConfig, as_json: bool) -> int:
    by_input, errors = asyncio.run(_collect_once(config))
    if as_json:
        rows = [
            {
                "input": name,
                "name": s.name,
                "value": s.value,
                "labels": dict(s.labels),
                "timestamp": s.timestamp,
                "kind": s.kind,
            }
            for name, samples in by_input.items()
            for s in samples
        ]
        print(json.dumps(rows, indent=1))
    else:
        for samples in by_input.values():
            for sample in samples:
                print(format_sample(sample))
    for name, error in errors.items():
        print(f"ebbflow: input {name} failed: {error}", file=sys.stderr)
    return 1 if errors else 0


async def _policies(config: AppConfig) -> list[dict[str, Any]]:
    ctx = build_context(config)
    try:
        containers = await ctx.nodes.running_containers()
    except (aiodocker.DockerError, aiohttp.ClientError, OSError, TimeoutError) as err:
        raise EngineUnreachableError(
            f"cannot reach the Docker engine at {ctx.docker.host}: {err}"
        ) from None
    finally:
        await ctx.nodes.close()
    services = group_services(containers, config.rules, config.scope)
    paused_names: set[str] = set()
    retired: set[str] = set()
    if config.state.exists():  # what a run recorded; a reading command never creates it
        store = DecisionStore(config.state)
        try:
            paused_names = {name for name, is_paused, _ in store.controls() if is_paused}
            for name in store.services():
                last = store.last_carried_out(parse_service_key(name))
                if last == (0, "operator"):
                    retired.add(name)
        finally:
            store.close()
    rows = []
    for key, state in sorted(services.items(), key=lambda kv: format_service_key(kv[0])):
        policy = state.result.policy
        source = state.replicas[state.source].info
        probe, probe_errors = parse_probe(source.labels)
        rows.append(
            {
                "service": format_service_key(key),
                "replicas": state.count,
                "declared": policy.initial_replicas if policy else None,
                "at_max": policy is not None and state.count >= policy.max_replicas,
                "containers": sorted(state.replicas),
                "policy": policy.model_dump() if policy else None,
                "errors": list(state.result.errors),
                "in_scope": state.in_scope,
                "source": state.source,
                "probe": probe.model_dump(exclude_defaults=True) if probe else None,
                "probe_errors": list(probe_errors),
                "warnings": probe_warnings([r.info for r in state.replicas.values()]),
                "paused": any(names_service(text, key) for text in paused_names),
                "retired": False,
            }
        )
    for name in sorted(retired - {row["service"] for row in rows}):
        rows.append(
            {
                "service": name, "replicas": 0, "declared": None, "at_max": False,
                "containers": [], "policy": None, "errors": [], "in_scope": True,
                "source": "", "probe": None, "probe_errors": [], "warnings": [],
                "paused": any(names_service(t, parse_service_key(name)) for t in paused_names),
                "retired": True,
            }
        )  # fmt: skip
    return rows


def probe_warnings(replicas: list[ContainerInfo]) -> list[str]:
    """Host-network replicas whose probes go to one address: probed once, for the service."""
    targets: dict[str, list[str]] = {}
    for info in replicas:
        spec, _ = parse_probe(info.labels)
        key = shared_key(info, spec) if spec is not None else None
        if key is not None:
            targets.setdefault(key[1], []).append(info.name)
    return [
        f"replicas {', '.join(sorted(names))} on host networking probe the same address "
        f"{target}: probed once, as the service's probe; its failures restart no replica"
        for target, names in sorted(targets.items())
        if len(names) > 1
    ]


def _policy_text(policy: dict[str, Any] | None) -> str:
    if policy is None:
        return "-"
    if not policy["rules"]:
        return f"fixed replicas={policy['initial_replicas']}"
    rules = []
    for rule in policy["rules"]:
        bounds = " ".join(
            f"{k}={rule[k]:g}" for k in ("target", "max", "min") if rule[k] is not None
        )
        rules.append(f"{rule['id']}[{bounds}]")
    up, down, both = policy["cooldown_up"], policy["cooldown_down"], policy["cooldown"]
    cooldowns = f"{both if up is None else up:g}/{both if down is None else down:g}s"
    return (
        f"{' '.join(rules)} mode={policy['mode']} replicas={policy['min_replicas']}.."
        f"{policy['max_replicas']} cooldown(up/down)={cooldowns} window={policy['window']:g}s"
    )


def cmd_policies(config: AppConfig, as_json: bool) -> int:
    rows = asyncio.run(_policies(config))
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'SERVICE':<36} {'REPLICAS':>8}  POLICY")
    for row in rows:
        text = (
            "INVALID: " + "; ".join(row["errors"]) if row["errors"] else _policy_text(row["policy"])
        )
        if row["policy"] is not None or row["errors"]:
            text += f"  (labels of {row['source']})"
        if row["retired"]:
            text = "RETIRED: every replica was removed by its operator; left alone"
        if row["declared"] is not None:
            text += f"  declared={row['declared']}"
        if row["at_max"]:
            text += "  [at max]"
        if row["probe"]:
            probe = " ".join(f"{k}={v}" for k, v in row["probe"].items())
            text += f"  probe[{probe}]"
        if row["probe_errors"]:
            text += "  PROBE INVALID: " + "; ".join(row["probe_errors"])
        if row["paused"]:
            text += "  [paused: no actions until `ebbflow resume`]"
        if not row["in_scope"]:
            text += "  [out of scope: monitored, never acted on]"
        print(f"{row['service']:<36} {row['replicas']:>8}  {text}")
        for warning in row["warnings"]:
            print(f"{'':<36} {'':>8}  warning: {warning}")
    return 0


def cmd_decisions(config: AppConfig, service: str | None, limit: int, as_json: bool) -> int:
    store = open_store(config)
    try:
        key = parse_service_key(resolve_service(store, service)) if service else None
        rows = store.recent(limit, key)
    finally:
        store.close()
    if as_json:
        print(json.dumps([row.__dict__ for row in rows], indent=1))
        return 0
    for row in reversed(rows):
        when = datetime.fromtimestamp(row.timestamp).isoformat(timespec="seconds")
        outcome = row.outcome or "pending"
        dry = " (dry run)" if row.dry_run else ""
        print(f"{when}  {row.reason}  [{outcome}{dry}: {row.detail or ''}]")
    return 0


def cmd_healing(config: AppConfig, limit: int, as_json: bool) -> int:
    store = open_store(config)
    try:
        rows = store.recent_steps(limit)
    finally:
        store.close()
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in reversed(rows):
        when = datetime.fromtimestamp(row["ts"]).isoformat(timespec="seconds")
        outcome = ("ok" if row["ok"] else "failed") + (" (dry run)" if row["dry_run"] else "")
        print(
            f"{when}  {row['service']} {row['container']}: {row['action']} #{row['attempt']}"
            f" ({row['reason']})  [{outcome}: {row['detail']}]"
        )
    return 0


async def _bench(config: AppConfig, name: str, cycles: int) -> dict[str, Any]:
    bench = load_benchmark(name)
    ctx = build_context(config)
    try:
        return await bench(ctx, cycles)
    except (aiodocker.DockerError, aiohttp.ClientError, OSError) as err:
        raise EngineUnreachableError(
            f"cannot reach the Docker engine at {ctx.docker.host}: {err}"
        ) from None
    finally:
        await ctx.nodes.close()


def cmd_bench(config: AppConfig, name: str, cycles: int, as_json: bool) -> int:
    result = asyncio.run(_bench(config, name, cycles))
    if as_json:
        print(json.dumps(result, indent=1))
        return 0
    for key, value in result.items():
        if isinstance(value, dict):
            figures = "  ".join(
                f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()
            )
            print(f"{key:<24} {figures}")
        else:
            print(f"{key:<24} {value:.2f}" if isinstance(value, float) else f"{key:<24} {value}")
    return 0


def cmd_explain(config: AppConfig, service: str, limit: int, as_json: bool) -> int:
    store = open_store(config)
    try:
        name = resolve_service(store, service)
        rows = store.recent(limit, parse_service_key(name))
        steps = store.recent_steps(limit, parse_service_key(name))
        startup = store.startup(parse_service_key(name))
    finally:
        store.close()
    if as_json:
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
        when = datetime.fromtimestamp(startup.timestamp).isoformat(timespec="seconds")
        print(
            f"{name}: start-up {startup.seconds:.1f}s, learned from {startup.seen} new "
            f"replica(s) (the newest took {startup.last_seconds:.1f}s, at {when}); "
            "capacity is ordered this far ahead"
        )
    print(f"{name}: last {len(rows)} decision(s), newest last")
    for row in reversed(rows):
        when = datetime.fromtimestamp(row.timestamp).isoformat(timespec="seconds")
        print(f"{when}  {row.reason}")
        outcome = row.outcome or "pending"
        print(
            f"    outcome: {outcome}{' (dry run)' if row.dry_run else ''}"
            f"{': ' + row.detail if row.detail else ''}"
        )
        inputs = "  ".join(f"{k}={v:g}" for k, v in sorted(row.inputs.items()))
        print(f"    inputs:  {inputs}")
    if steps:
        print(f"{name}: last {len(steps)} healing step(s), newest last")
    for step in reversed(steps):
        when = datetime.fromtimestamp(step["ts"]).isoformat(timespec="seconds")
        outcome = "ok" if step["ok"] else "failed"
        print(f"{when}  {step['container']}: {step['action']} #{step['attempt']}")
        print(f"    why:     {step['reason']}")
        print(f"    outcome: {outcome}: {step['detail']}")
    return 0


def cmd_replay(
    config: AppConfig, trace: Path, labels: Path, start_delay: float, as_json: bool
) -> int:
    try:
        demand, service = load_trace(trace), load_labels(labels)
        result = replay(demand, service, start_delay, config.rules)
        reference, about = hpa_reference(demand, service, start_delay, config.rules)
    except (OSError, ValueError) as err:
        raise ConfigError(str(err)) from None
    missed = goals_missed(result.summary, reference.summary, len(demand)) if reference else None
    if as_json:
        out = result.as_dict()
        out["hpa"] = reference.as_dict()["summary"] if reference else None
        out["hpa_about"] = about
        out["goals_missed"] = missed
        print(json.dumps(out, indent=1))
        return 0
    for d in result.decisions:
        print(f"t={d['t']:>7g}  {d['from']:>3} → {d['to']:<3} {d['reason']}")
    print(f"ebbflow: {summary_line(result.summary)}")
    print(about)
    if reference is not None and missed is not None:
        print(f"hpa:     {summary_line(reference.summary)}")
        verdict = "met" if not missed else "missed: " + "; ".join(missed)
        print(f"goals against HPA ({GOALS}): {verdict}")
    return 0


def summary_line(s: Summary) -> str:
    return (
        f"violation_seconds={s.violation_seconds} unserved_core_seconds="
        f"{s.unserved_core_seconds:.3f} replica_seconds={s.replica_seconds} "
        f"actions={s.actions} reversals={s.reversals}"
    )


def cmd_status(config: AppConfig, listen: str | None, as_json: bool) -> int:
    """0 ready, 1 not ready, 2 when nothing answers there."""
    prometheus = config.outputs.get("prometheus")
    address = (
        listen
        or (prometheus.get("listen") if isinstance(prometheus, dict) else None)
        or "127.0.0.1:9781"
    )
    url = f"http://{address}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            report = json.loads(resp.read())
    except urllib.error.HTTPError as err:  # 503: not ready, with the same body
        report = json.loads(err.read())
    except (OSError, ValueError) as err:
        print(f"ebbflow: no ebbflow answers at {url}: {err}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{report['status']} ({url})")
        for part, problem in sorted(report["problems"].items()):
            print(f"  {part}: {problem}")
        for name, component in sorted(report["components"].items()):
            state = "given up" if component["given_up"] else "up" if component["up"] else "down"
            print(f"  component {name:<20} {state:<9} restarts={component['restarts']}")
    return 0 if report["status"] == "ready" else 1


def cmd_control(config: AppConfig, verb: str, service: str) -> int:
    """Written to the state file; the instance running on it follows within a second."""
    now = time.time()
    if verb == "forget":
        store = open_store(config)
        try:
            name = resolve_service(store, service)
            dropped = store.forget(parse_service_key(name), service, now)
        finally:
            store.close()
        print(f"{name}: forgot {dropped} decision(s) and its desired count")
        return 0
    store = DecisionStore(config.state)
    try:
        store.set_paused(service, verb == "pause", now)
    finally:
        store.close()
    print(f"{service}: {'paused' if verb == 'pause' else 'resumed'} (state {config.state})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        setup_logging(config.log_level if args.command == "run" else "WARNING")
        if args.command == "run":
            app = build_app(config, time.time)
            asyncio.run(run_app(app))
            return 0
        if args.command == "collect":
            return cmd_collect(config, args.json)
        if args.command == "policies":
            return cmd_policies(config, args.json)
        if args.command == "bench":
            return cmd_bench(config, args.name, args.cycles, args.json)
        if args.command == "explain":
            return cmd_explain(config, args.service, args.limit, args.json)
        if args.command == "replay":
            return cmd_replay(config, args.trace, args.labels, args.start_delay, args.json)
        if args.command in ("pause", "resume", "forget"):
            return cmd_control(config, args.command, args.service)
        if args.command == "status":
            return cmd_status(config, args.listen, args.json)
        if args.command == "healing":
            return cmd_healing(config, args.limit, args.json)
        return cmd_decisions(config, args.service, args.limit, args.json)
    except ConfigError as err:
        print(f"ebbflow: config error: {err}", file=sys.stderr)
        return 2
    except (EngineUnreachableError, NotFoundError) as err:
        print(f"ebbflow: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
