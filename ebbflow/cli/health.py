"""`ebbflow healthcheck`: is the ebbflow of this config serving? For the image's
HEALTHCHECK and systemd's watchdogs: no curl or wget in the image, one request, a deadline."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from ebbflow.config import AppConfig, ConfigError

from .common import DEFAULT_LISTEN


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    check = sub.add_parser(
        "healthcheck",
        parents=[common],
        help="exit 0 when this config's ebbflow answers /healthz (or --ready: /readyz)",
    )
    check.add_argument("--ready", action="store_true", help="ask /readyz: every part works")
    check.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    check.set_defaults(func=cmd_healthcheck)


def health_url(config: AppConfig, path: str) -> str:
    """Where this config's Prometheus output serves; a wildcard address is asked on loopback."""
    section = config.outputs.get("prometheus", False)
    if section is False:
        raise ConfigError("healthcheck: outputs.prometheus is off, so nothing serves /healthz")
    listen = section.get("listen", DEFAULT_LISTEN) if isinstance(section, dict) else DEFAULT_LISTEN
    host, _, port = str(listen).rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if port == "0":
        raise ConfigError("healthcheck: outputs.prometheus.listen is port 0 (any free port)")
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def cmd_healthcheck(args: argparse.Namespace, config: AppConfig) -> int:
    url = health_url(config, "/readyz" if args.ready else "/healthz")
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            body = response.read(4096).decode(errors="replace").strip()
    except urllib.error.HTTPError as err:
        body = err.read(512).decode(errors="replace")
        print(f"unhealthy: {url}: HTTP {err.code}: {body}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"unhealthy: {url}: {err}", file=sys.stderr)
        return 1
    print(f"ok: {url}: {body}")
    return 0
