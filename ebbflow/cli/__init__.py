"""The `ebbflow` command: run, status, collect, policies, decisions, healing, explain,
pause, resume, forget, replay, bench, healthcheck. One module per group of commands; each registers
its parsers with the function that runs them (`set_defaults(func=...)`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version

from ebbflow.config import ConfigError
from ebbflow.logs import setup_logging
from ebbflow.state import StateFileError

from . import audit, controls, health, replay, run, services
from .common import (
    EngineUnreachableError,
    NotFoundError,
    common_options,
    config_from,
    scope_options,
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ebbflow", description=__doc__)
    top.add_argument("--version", action="version", version=f"ebbflow {version('ebbflow')}")
    common, scoped = common_options(), scope_options()
    sub = top.add_subparsers(dest="command", required=True)
    run.register(sub, common, scoped)
    services.register(sub, common, scoped)
    audit.register(sub, common)
    controls.register(sub, common)
    replay.register(sub, common)
    health.register(sub, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from(args)
        setup_logging(config.log_level if args.command == "run" else "WARNING")
        code: int = args.func(args, config)
        return code
    except ConfigError as err:
        print(f"ebbflow: config error: {err}", file=sys.stderr)
        return 2
    except (EngineUnreachableError, NotFoundError) as err:
        print(f"ebbflow: {err}", file=sys.stderr)
        return 1
    except StateFileError as err:  # corrupt, unreadable: one line, the path and the cause
        print(f"ebbflow: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
