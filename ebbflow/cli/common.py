"""What every command shares: the config from flags, the state file, errors that end a
command with a message instead of a traceback."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ebbflow.config import AppConfig, ConfigError, load_config
from ebbflow.model import Sample
from ebbflow.state import DecisionStore

DEFAULT_LISTEN = "127.0.0.1:9781"  # the Prometheus output's default address


class EngineUnreachableError(RuntimeError):
    pass


class NotFoundError(RuntimeError):
    """What the command was asked to read is not there."""


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ["EBBFLOW_CONFIG"]) if os.environ.get("EBBFLOW_CONFIG") else None,
        help="YAML config file (default: $EBBFLOW_CONFIG; EBBFLOW_* env overrides it)",
    )
    common.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    return common


def scope_options() -> argparse.ArgumentParser:
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
    return scoped


def config_from(args: argparse.Namespace) -> AppConfig:
    overrides: dict[str, Any] = {
        key: str(value) if key == "state" else value
        for key in ("state", "interval", "dry_run", "role")
        if (value := getattr(args, key, None))  # unset flags leave the config's value
    }
    if getattr(args, "listen", None) and args.command == "run":
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


def open_store(config: AppConfig) -> DecisionStore:
    """The state of an existing run; reading commands never create one."""
    if not config.state.exists():
        raise NotFoundError(
            f"no state file at {config.state}: `ebbflow run` writes it; --state names another"
        )
    return DecisionStore(config.state)


def resolve_service(store: DecisionStore, service: str) -> str:
    """`compose:demo/web`, `demo/web` or `web`, as the store names it."""
    try:
        return store.resolve(service)
    except LookupError as err:
        raise NotFoundError(str(err)) from None


def format_sample(sample: Sample) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sample.labels)
    return (
        f"{sample.name}{{{labels}}} {sample.value!r}"
        if labels
        else f"{sample.name} {sample.value!r}"
    )
