"""`ebbflow healthcheck`: is the ebbflow of this config serving? For the image's
HEALTHCHECK and systemd's watchdogs: no curl or wget in the image, one request, a deadline.

Also how every command asks a running ebbflow over HTTP (`ebbflow status` too): where the
config serves, over TLS when its web config serves TLS, and with basic auth when asked
(`--user`; the password from $EBBFLOW_WEB_PASSWORD, never from the command line, where
`ps` would show it)."""

from __future__ import annotations

import argparse
import base64
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ebbflow.config import AppConfig, ConfigError
from ebbflow.web.config import load_web_config

from .common import DEFAULT_LISTEN

PASSWORD_ENV = "EBBFLOW_WEB_PASSWORD"
ASKS_FOR_AUTH = (
    "this ebbflow asks for basic auth (its web config's basic_auth_users): give --user NAME "
    f"and the password in ${PASSWORD_ENV}"
)


def client_options() -> argparse.ArgumentParser:
    """The options of a command that asks a running ebbflow over HTTP."""
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--user",
        help=f"basic auth user, when the web config has users (password: ${PASSWORD_ENV})",
    )
    return client


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    check = sub.add_parser(
        "healthcheck",
        parents=[common, client_options()],
        help="exit 0 when this config's ebbflow answers /healthz (or --ready: /readyz)",
    )
    check.add_argument("--ready", action="store_true", help="ask /readyz: every part works")
    check.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    check.set_defaults(func=cmd_healthcheck)


def health_url(config: AppConfig, path: str) -> str:
    """Where this config's Prometheus output serves; a wildcard address is asked on loopback."""
    return health_target(config, path)[0]


def health_target(
    config: AppConfig, path: str, listen: str | None = None
) -> tuple[str, ssl.SSLContext | None]:
    """The URL to ask, and the TLS context to ask it with (None: plain http). `listen`
    names another address than the config's; its web config still says whether TLS."""
    section = config.outputs.get("prometheus", False)
    if section is False and listen is None:
        raise ConfigError(f"outputs.prometheus is off, so nothing serves {path}")
    options = section if isinstance(section, dict) else {}
    listen = listen or options.get("listen", DEFAULT_LISTEN)
    host, _, port = str(listen).rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if port == "0":
        raise ConfigError(f"{listen}: port 0 (any free port) cannot be asked; give --listen")
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


def request(url: str, user: str | None) -> urllib.request.Request:
    """A GET of `url`, with basic auth when a user is given."""
    asked = urllib.request.Request(url)
    if user:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            raise ConfigError(f"--user {user}: put the password in ${PASSWORD_ENV}")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        asked.add_header("Authorization", f"Basic {token}")
    return asked


def http_problem(err: urllib.error.HTTPError, body: str) -> str:
    """An HTTP error's line: a 401 says how to answer it."""
    if err.code == 401:
        return f"HTTP 401: {ASKS_FOR_AUTH}"
    return f"HTTP {err.code}: {body}"


def cmd_healthcheck(args: argparse.Namespace, config: AppConfig) -> int:
    url, context = health_target(config, "/readyz" if args.ready else "/healthz")
    asked = request(url, args.user)  # a missing password is the command's error, not health
    try:
        with urllib.request.urlopen(asked, timeout=args.timeout, context=context) as response:
            body = response.read(4096).decode(errors="replace").strip()
    except urllib.error.HTTPError as err:
        body = err.read(512).decode(errors="replace")
        print(f"unhealthy: {url}: {http_problem(err, body)}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"unhealthy: {url}: {err}", file=sys.stderr)
        return 1
    print(f"ok: {url}: {body}")
    return 0
