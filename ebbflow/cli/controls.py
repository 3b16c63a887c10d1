"""`ebbflow pause|resume|forget SERVICE` (the operator's word) and `ebbflow status` (what
a running instance says of itself)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ebbflow.config import AppConfig
from ebbflow.control_channel import ask
from ebbflow.services import parse_service_key
from ebbflow.state import DecisionStore

from .common import NotFoundError, open_store, resolve_service
from .health import client_options, health_target, http_problem, request

MAX_REPORT = 4 << 20  # bytes of /readyz read: a report is kilobytes


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    for verb, text in (
        ("pause", "no actions for a service (scaling, healing, reconcile) until resumed"),
        ("resume", "a paused service is acted on again"),
        ("forget", "drop a service's decisions and desired count"),
    ):
        control = sub.add_parser(verb, parents=[common], help=text)
        control.add_argument("service", help="compose:demo/web, demo/web or web")
        control.add_argument("--state", type=Path)
        control.set_defaults(func=cmd_control)

    status = sub.add_parser(
        "status",
        parents=[common, client_options()],
        help="a running instance's /readyz: what works, what not",
    )
    status.add_argument(
        "--listen",
        help="HOST:PORT it serves on (default: ask the instance of --state, else where the "
        "config serves, over TLS when its web config says so)",
    )
    status.add_argument("--state", type=Path, help="the state file the instance runs on")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)


def _over_http(
    config: AppConfig, listen: str | None, user: str | None
) -> tuple[dict[str, Any] | None, str]:
    url, context = health_target(config, "/readyz", listen)
    asked = request(url, user)
    try:
        with urllib.request.urlopen(asked, timeout=5, context=context) as resp:
            body = resp.read(MAX_REPORT)
    except urllib.error.HTTPError as err:  # 503: not ready, with the same body
        body = err.read(MAX_REPORT)
        if err.code != 503:
            problem = http_problem(err, body[:512].decode(errors="replace"))
            print(f"ebbflow: {url}: {problem}", file=sys.stderr)
            return None, url
    except (OSError, ValueError) as err:
        print(f"ebbflow: no ebbflow answers at {url}: {err}", file=sys.stderr)
        return None, url
    try:
        report = json.loads(body)
    except ValueError:
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("status"), str):
        print(f"ebbflow: {url}: not an ebbflow /readyz report: {body[:200]!r}", file=sys.stderr)
        return None, url
    return report, url


def cmd_status(args: argparse.Namespace, config: AppConfig) -> int:
    """0 ready, 1 not ready, 2 when nothing answers. Without --listen, the instance running
    on this state file answers through its control socket."""
    report: dict[str, Any] | None = None
    where = ""
    if not args.listen:
        answer = ask(config.state, {"verb": "status"})
        if answer is not None and answer.get("ok"):
            report, where = answer["report"], f"pid {answer.get('pid')}, state {config.state}"
    if report is None:
        report, where = _over_http(config, args.listen, args.user)
        if report is None:
            return 2
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{report['status']} ({where})")
        for part, problem in sorted(report.get("problems", {}).items()):
            print(f"  {part}: {problem}")
        for name, dependency in sorted(report.get("dependencies", {}).items()):
            state = "up" if dependency["up"] else f"DOWN: {dependency['reason']}"
            print(f"  dependency {name}: {state}")
        for name, component in sorted(report.get("components", {}).items()):
            state = "given up" if component["given_up"] else "up" if component["up"] else "down"
            print(f"  component {name:<20} {state:<9} restarts={component['restarts']}")
    return 0 if report["status"] == "ready" else 1


def cmd_control(args: argparse.Namespace, config: AppConfig) -> int:
    """To the running instance through its control socket (it takes effect at once); with
    none running on this state file, written there for its next start."""
    now, verb, service = time.time(), args.command, args.service
    answer = ask(config.state, {"verb": verb, "service": service})
    if answer is not None:
        if not answer.get("ok"):
            raise NotFoundError(str(answer.get("error")))
        taken = f"taken by the running instance (pid {answer.get('pid')})"
        if verb == "forget":
            print(f"{answer['service']}: forgot {answer['dropped']} decision(s); {taken}")
        else:
            print(f"{service}: {'paused' if verb == 'pause' else 'resumed'}; {taken}")
        return 0
    idle = f"no instance runs on {config.state}: taken at its next start"
    if verb == "forget":
        store = open_store(config)
        try:
            name = resolve_service(store, service)
            dropped = store.forget(parse_service_key(name), service, now)
        finally:
            store.close()
        print(f"{name}: forgot {dropped} decision(s) and its desired count; {idle}")
        return 0
    store = DecisionStore(config.state)
    try:
        store.set_paused(service, verb == "pause", now)
    finally:
        store.close()
    print(f"{service}: {'paused' if verb == 'pause' else 'resumed'}; {idle}")
    return 0
