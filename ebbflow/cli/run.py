"""`ebbflow run`, `collect --once` and `bench`: the commands that start ebbflow's parts."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

from ebbflow import runtime
from ebbflow.app import App, build_app, build_context, build_plugins, run_app
from ebbflow.config import AppConfig
from ebbflow.model import Sample
from ebbflow.plugins import load_benchmark

from .common import EngineUnreachableError, config_from, format_sample

log = logging.getLogger("ebbflow")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    scoped: argparse.ArgumentParser,
) -> None:
    run = sub.add_parser(
        "run", parents=[common, scoped], help="collect, decide and act until stopped"
    )
    run.add_argument("--state", type=Path, help="SQLite state file")
    run.add_argument("--listen", help="HOST:PORT for /metrics")
    run.add_argument("--interval", type=float, help="collection interval, seconds")
    run.add_argument("--dry-run", action="store_true", help="decide and record, change nothing")
    run.add_argument(
        "--role",
        choices=("all", "agent", "decider"),
        help="agent: collect on this node and publish, decide nothing; decider: take pushed "
        "samples, decide and act; all (the default): both in one process",
    )
    run.set_defaults(func=cmd_run)

    collect = sub.add_parser("collect", parents=[common], help="one cycle of every input")
    collect.add_argument("--once", action="store_true", required=True)
    collect.add_argument("--json", action="store_true")
    collect.set_defaults(func=cmd_collect)

    bench = sub.add_parser("bench", parents=[common], help="measure a part, side by side")
    bench.add_argument(
        "name",
        help="collect: the containers input vs bare reads vs stats API; "
        "pipeline: samples/s into each output's serializer, /metrics for 100k series",
    )
    bench.add_argument("--cycles", type=int, default=20)
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=cmd_bench)


def cmd_run(args: argparse.Namespace, config: AppConfig) -> int:
    if not runtime.tune_allocator():  # before any thread is started
        log.info("not glibc: the allocator keeps its defaults")
    app = build_app(config, time.time, read_config=lambda: config_from(args))
    asyncio.run(_run(app))
    return 0


async def _run(app: App) -> None:
    """`run_app` with the garbage collector set up for a long life (`ebbflow/runtime.py`)."""
    runtime.tune_collector()
    settled = asyncio.get_running_loop().call_later(runtime.SETTLED_AFTER, runtime.settled)
    try:
        await run_app(app)
    finally:
        settled.cancel()


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


def cmd_collect(args: argparse.Namespace, config: AppConfig) -> int:
    by_input, errors = asyncio.run(_collect_once(config))
    if args.json:
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


def cmd_bench(args: argparse.Namespace, config: AppConfig) -> int:
    result = asyncio.run(_bench(config, args.name, args.cycles))
    if args.json:
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
