"""`ebbflow healthcheck`: is the ebbflow of this config serving? For the image's
HEALTHCHECK and systemd's watchdogs: no curl or wget in the image, one request, a deadline."""

from __future__ import annotations

import argparse
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ebbflow.config import AppConfig, ConfigError
from ebbflow.web.config import load_web_config

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
    return health_target(config, path)[0]


def health_target(config: AppConfig, path: str) -> tuple[str, ssl.SSLContext | None]:
    """The URL to ask, and the TLS context to ask it with (None: plain http)."""
    section = config.outputs.get("prometheus", False)
    if section is False:
        raise ConfigError("healthcheck: outputs.prometheus is off, so nothing serves /healthz")
    options = section if isinstance(section, dict) else {}
    listen = options.get("listen", DEFAULT_LISTEN)
    host, _, port = str(listen).rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if port == "0":
        raise ConfigError("healthcheck: outputs.prometheus.listen is port 0 (any free port)")
    context = _tls(options)
    scheme = "https" if context is not None else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}{path}", context


def _tls(options: dict[str, object]) -> ssl.SSLContext | None:
    """With a web config that serves TLS: a client context for asking this machine's own
    ebbflow on loopback (the certificate names the service, not 127.0.0.1, so it is not
    checked; /healthz says only "ok")."""
    web = options.get("web_config_file")
    if not web:
        return None
    _config, server = load_web_config(Path(str(web)), "outputs.prometheus.web_config_file")
    if server is None:
        return None
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return client


def cmd_healthcheck(args: argparse.Namespace, config: AppConfig) -> int:
    url, context = health_target(config, "/readyz" if args.ready else "/healthz")
    try:
        with urllib.request.urlopen(url, timeout=args.timeout, context=context) as response:
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
