"""`ebbflow policies`: every service the catalog finds on the engines, its parsed policy and
its errors, and what each enabled input reads from its labels."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp

from ebbflow.app import build_context
from ebbflow.bus import Bus
from ebbflow.catalog import Service, ServiceCatalog
from ebbflow.config import AppConfig
from ebbflow.model import ContainerEvent, ContainerEventKind
from ebbflow.plugins import Describe, enabled_sections, load
from ebbflow.policy import policy_line
from ebbflow.services import format_service_key, names_service, parse_service_key
from ebbflow.state import DecisionStore

from .common import EngineUnreachableError


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    scoped: argparse.ArgumentParser,
) -> None:
    policies = sub.add_parser(
        "policies",
        parents=[common, scoped],
        help="discovered services with their policies and errors",
    )
    policies.add_argument("--json", action="store_true")
    policies.add_argument("--state", type=Path, help="read pause and retire state from it")
    policies.set_defaults(func=cmd_policies)


async def running_catalog(config: AppConfig) -> ServiceCatalog:
    """The catalog of what runs now on every engine, built once."""
    ctx = build_context(config)
    try:
        containers = await ctx.nodes.running_containers()
    except (aiodocker.DockerError, aiohttp.ClientError, OSError, TimeoutError) as err:
        raise EngineUnreachableError(
            f"cannot reach the Docker engine at {ctx.docker.host}: {err}"
        ) from None
    finally:
        await ctx.nodes.close()
    catalog = ServiceCatalog(Bus(), config.rules, config.scope, announce=False)
    now = time.time()
    for info in containers:
        catalog.on_container(ContainerEvent(ContainerEventKind.PRESENT, info, now))
    return catalog


def describers(config: AppConfig) -> list[Describe]:
    """What each enabled input registered to report of a service's labels."""
    found = []
    for name in enabled_sections(config.inputs):
        describe = load("inputs", name).describe
        if describe is not None:
            found.append(describe)
    return found


def _operator_state(config: AppConfig) -> tuple[set[str], set[str]]:
    """(paused as named, retired services) from what a run recorded; a reading command
    never creates the state file."""
    paused: set[str] = set()
    retired: set[str] = set()
    if not config.state.exists():
        return paused, retired
    store = DecisionStore(config.state)
    try:
        paused = {name for name, is_paused, _ in store.controls() if is_paused}
        for name in store.services():
            if store.last_carried_out(parse_service_key(name)) == (0, "operator"):
                retired.add(name)
    finally:
        store.close()
    return paused, retired


def _row(service: Service, paused: set[str], reports: list[Describe]) -> dict[str, Any]:
    policy = service.policy.policy
    assert service.definer is not None
    replicas = list(service.replicas.values())
    row: dict[str, Any] = {
        "service": format_service_key(service.key),
        "replicas": service.count,
        "declared": policy.initial_replicas if policy else None,
        "at_max": policy is not None and service.count >= policy.max_replicas,
        "containers": sorted(info.name for info in replicas),
        "policy": policy.model_dump() if policy else None,
        "policy_line": policy_line(policy) if policy else "-",
        "errors": list(service.policy.errors),
        "in_scope": service.in_scope,
        "source": service.definer.name,
        "summaries": [],
        "warnings": [],
        "paused": any(names_service(text, service.key) for text in paused),
        "retired": False,
    }
    for describe in reports:
        report = describe(service.definer, replicas)
        row.update(report.fields)
        if report.summary:
            row["summaries"].append(report.summary)
        row["warnings"] += list(report.warnings)
    return row


async def _policies(config: AppConfig) -> list[dict[str, Any]]:
    catalog = await running_catalog(config)
    paused, retired = _operator_state(config)
    reports = describers(config)
    running = sorted((s for s in catalog if s.replicas), key=lambda s: format_service_key(s.key))
    rows = [_row(service, paused, reports) for service in running]
    for name in sorted(retired - {row["service"] for row in rows}):
        rows.append(
            {
                "service": name, "replicas": 0, "declared": None, "at_max": False,
                "containers": [], "policy": None, "policy_line": "-", "errors": [],
                "in_scope": True,
                "source": "", "summaries": [], "warnings": [],
                "paused": any(names_service(t, parse_service_key(name)) for t in paused),
                "retired": True,
            }
        )  # fmt: skip
    return rows


def _text(row: dict[str, Any]) -> str:
    text = "INVALID: " + "; ".join(row["errors"]) if row["errors"] else row["policy_line"]
    if row["policy"] is not None or row["errors"]:
        text += f"  (labels of {row['source']})"
    if row["retired"]:
        text = "RETIRED: every replica was removed by its operator; left alone"
    if row["declared"] is not None:
        text += f"  declared={row['declared']}"
    if row["at_max"]:
        text += "  [at max]"
    for summary in row["summaries"]:
        text += f"  {summary}"
    if row["paused"]:
        text += "  [paused: no actions until `ebbflow resume`]"
    if not row["in_scope"]:
        text += "  [out of scope: monitored, never acted on]"
    return text


def cmd_policies(args: argparse.Namespace, config: AppConfig) -> int:
    rows = asyncio.run(_policies(config))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'SERVICE':<36} {'REPLICAS':>8}  POLICY")
    for row in rows:
        print(f"{row['service']:<36} {row['replicas']:>8}  {_text(row)}")
        for warning in row["warnings"]:
            print(f"{'':<36} {'':>8}  warning: {warning}")
    return 0
