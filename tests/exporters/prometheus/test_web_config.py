"""The web config (node_exporter's web-config.yml format) on the server that serves
/metrics and the status page: basic auth with bcrypt hashes made by the real `htpasswd`,
TLS with certificates made by the real `openssl`, and bad files refused at start, naming
the field."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from ebbflow.app import build_context
from ebbflow.config import AppConfig, ConfigError
from ebbflow.exporters.prometheus import PrometheusOutput
from ebbflow.exporters.prometheus import plugin as prometheus_plugin
from ebbflow.web.config import load_web_config
from ebbflow.web.routes import StatusPages
from ebbflow.web.view import StatusView
from tests.certs import make_ca, sign
from tests.conftest import free_port

pytestmark = pytest.mark.integration

PATHS = ("/metrics", "/readyz", "/", "/api/topology", "/api/status", "/static/page.css")


def htpasswd(password: str) -> str:
    """A bcrypt hash as operators make them for node_exporter (`htpasswd -nbBC 10`)."""
    out = subprocess.run(["htpasswd", "-nbBC", "10", "", password], capture_output=True,
                         text=True, check=True, timeout=30).stdout  # fmt: skip
    return out.strip().lstrip(":")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-tls")
    make_ca(folder / "ca")
    names = "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n"
    sign(folder / "ca", folder, "server", names)
    return folder


def write_config(folder: Path, text: str) -> Path:
    path = folder / "web-config.yml"
    path.write_text(text)
    return path


def get(
    url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None
) -> int:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def header_of(url: str, context: ssl.SSLContext | None) -> dict[str, str]:
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return dict(response.headers)


def ebbflow_cli(
    folder: Path, config: Path, *args: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EBBFLOW_WEB_PASSWORD"}
    if password is not None:
        env["EBBFLOW_WEB_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "ebbflow", *args, "--config", str(config),
         "--state", str(folder / "state.db")] if args[0] == "status" else
        [sys.executable, "-m", "ebbflow", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=folder, env=env,
    )  # fmt: skip


async def serving(config_file: Path, port: int) -> tuple[asyncio.Task[None], PrometheusOutput]:
    """The Prometheus output as the app builds it, with the status page's routes."""
    ctx = build_context(AppConfig())
    ctx = replace(ctx, web=StatusPages(StatusView(ctx.bus, ctx.nodes)))
    options = {"listen": f"127.0.0.1:{port}", "web_config_file": str(config_file)}
    output = prometheus_plugin.build(ctx, options, "outputs.prometheus")
    task = asyncio.create_task(output.run())
    for _ in range(100):
        if output.bound is not None:
            break
        await asyncio.sleep(0.05)
    return task, output


async def test_basic_auth_guards_every_path_but_healthz(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"basic_auth_users:\n  alice: {htpasswd('s3cret')}\n")
    port = free_port()
    task, output = await serving(config, port)
    base = f"http://127.0.0.1:{port}"
    try:
        for path in PATHS:
            assert await asyncio.to_thread(get, base + path) == 401, path
            assert await asyncio.to_thread(get, base + path, ("alice", "wrong")) == 401, path
            assert await asyncio.to_thread(get, base + path, ("bob", "s3cret")) == 401, path
            assert await asyncio.to_thread(get, base + path, ("alice", "s3cret")) == 200, path
        assert await asyncio.to_thread(get, base + "/healthz") == 200  # liveness only
        assert output.auth is not None and output.auth.rejected == 3 * len(PATHS)
        counted = {s.name: s.value for s in output.telemetry(0.0)}
        assert counted["ebbflow_http_auth_rejected_total"] == 3 * len(PATHS)
        assert counted["ebbflow_status_page_streams"] == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_https_with_the_configured_certificate(tmp_path: Path, certs: Path) -> None:
    config = write_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs}/server-cert.pem\n"
        f"  key_file: {certs}/server-key.pem\n"
        f"basic_auth_users:\n  alice: {htpasswd('s3cret')}\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
    )
    port = free_port()
    task, _ = await serving(config, port)
    trusting = ssl.create_default_context(cafile=str(certs / "ca" / "ca.pem"))
    try:
        url = f"https://127.0.0.1:{port}"
        assert await asyncio.to_thread(get, url + "/metrics", ("alice", "s3cret"), trusting) == 200
        assert await asyncio.to_thread(get, url + "/", None, trusting) == 401
        # The certificate is the configured one: a client that trusts only the system's
        # CAs refuses it.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(get, url + "/healthz", None, ssl.create_default_context())
        # Plain HTTP to the TLS listener gets no answer.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz")
        headers = await asyncio.to_thread(header_of, url + "/healthz", trusting)
        assert headers["X-Frame-Options"] == "deny"
        # `ebbflow healthcheck` follows the config to https.
        yaml_config = tmp_path / "ebbflow.yml"
        yaml_config.write_text(
            f"outputs:\n  prometheus:\n    listen: 127.0.0.1:{port}\n"
            f"    web_config_file: {config}\n"
        )
        check = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ebbflow", "healthcheck", "--config", str(yaml_config)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        assert check.stdout.startswith(f"ok: https://127.0.0.1:{port}/healthz")
        # `/readyz` asks for the user: `healthcheck --ready` and `status` say how to give
        # it, and given it, read the instance's report over TLS.
        for command in (("healthcheck", "--ready"), ("status",)):
            asked = await asyncio.to_thread(ebbflow_cli, tmp_path, yaml_config, *command)
            assert asked.returncode in (1, 2), asked
            assert (
                f"https://127.0.0.1:{port}/readyz: HTTP 401: this ebbflow asks for basic auth"
                in asked.stderr
                and "EBBFLOW_WEB_PASSWORD" in asked.stderr
            ), asked.stderr
            no_password = await asyncio.to_thread(
                ebbflow_cli, tmp_path, yaml_config, *command, "--user", "alice"
            )
            assert no_password.returncode == 2, no_password
            assert "--user alice: put the password in $EBBFLOW_WEB_PASSWORD" in no_password.stderr
            wrong = await asyncio.to_thread(
                ebbflow_cli, tmp_path, yaml_config, *command, "--user", "alice", password="x"
            )
            assert "HTTP 401" in wrong.stderr, wrong
        ready = await asyncio.to_thread(
            ebbflow_cli, tmp_path, yaml_config, "healthcheck", "--ready", "--user", "alice",
            password="s3cret",
        )  # fmt: skip
        assert ready.stdout.startswith(f"ok: https://127.0.0.1:{port}/readyz"), ready
        status = await asyncio.to_thread(
            ebbflow_cli, tmp_path, yaml_config, "status", "--json", "--user", "alice",
            password="s3cret",
        )  # fmt: skip
        assert status.returncode == 0, status
        assert json.loads(status.stdout)["status"] == "ready"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not so within {within} s")
        await asyncio.sleep(0.2)


def reload_ok(output: PrometheusOutput) -> float:
    return {s.name: s.value for s in output.telemetry(0.0)}[
        "ebbflow_web_config_last_reload_successful"
    ]


async def test_the_file_and_its_certificates_are_followed_while_serving(
    tmp_path: Path, certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As the exporter toolkit reads its file per request: users, headers and TLS change
    without a restart; a torn file keeps the last good config in force and says so once."""
    alice, bob = htpasswd("s3cret"), htpasswd("hunter2")
    config = write_config(tmp_path, f"basic_auth_users:\n  alice: {alice}\n")
    port = free_port()
    task, output = await serving(config, port)
    base = f"http://127.0.0.1:{port}/metrics"

    async def status(url: str, auth: tuple[str, str], context: ssl.SSLContext | None = None) -> int:
        try:
            return await asyncio.to_thread(get, url, auth, context)
        except (urllib.error.URLError, OSError):
            return 0  # no answer (http to https, or the listener opening again)

    try:
        assert await status(base, ("alice", "s3cret")) == 200
        assert reload_ok(output) == 1.0
        config.write_text(f"basic_auth_users:\n  bob: {bob}\n"
                          "http_server_config:\n  headers:\n    X-Test: followed\n")  # fmt: skip

        async def bob_in() -> bool:
            return await status(base, ("bob", "hunter2")) == 200

        await eventually(bob_in)
        assert await status(base, ("alice", "s3cret")) == 401
        assert (await asyncio.to_thread(header_of, f"http://127.0.0.1:{port}/healthz", None))[
            "X-Test"
        ] == "followed"
        # A torn write: said once, the last good config in force.
        with caplog.at_level(logging.ERROR, logger="ebbflow.web"):
            config.write_text("basic_auth_users: {bob: [\n")

            async def failed() -> bool:
                return reload_ok(output) == 0.0

            await eventually(failed)
            await asyncio.sleep(2.5)  # looked at again, twice: still said once
            assert await status(base, ("bob", "hunter2")) == 200
            assert await status(base, ("alice", "s3cret")) == 401
        said = [r.getMessage() for r in caplog.records if "does not load" in r.getMessage()]
        assert len(said) == 1 and "not YAML" in said[0], said
        # Emptied (truncated for a rewrite): not read as "no auth".
        with caplog.at_level(logging.ERROR, logger="ebbflow.web"):
            config.write_text("")

            async def emptied() -> bool:
                return any("is empty (a write under way?)" in r.getMessage()
                           for r in caplog.records)  # fmt: skip

            await eventually(emptied)
            assert reload_ok(output) == 0.0
            assert await status(base, ("alice", "s3cret")) == 401
            assert await asyncio.to_thread(get, base) == 401
        # TLS from now on, with copies of the certificate that are then renewed.
        for name in ("server-cert.pem", "server-key.pem"):
            (tmp_path / name).write_bytes((certs / name).read_bytes())
        config.write_text(
            "tls_server_config:\n  cert_file: server-cert.pem\n  key_file: server-key.pem\n"
            f"basic_auth_users:\n  bob: {bob}\n"
        )
        trusting = ssl.create_default_context(cafile=str(certs / "ca" / "ca.pem"))
        secure = f"https://127.0.0.1:{port}/metrics"

        async def over_tls() -> bool:
            return await status(secure, ("bob", "hunter2"), trusting) == 200

        await eventually(over_tls)
        assert reload_ok(output) == 1.0
        assert await status(base, ("bob", "hunter2")) == 0  # plain http no longer answers
        served = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", port))
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(
            (certs / "server-cert.pem").read_text()
        )
        names = "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n"
        sign(certs / "ca", tmp_path / "renewed", "server", names)
        for name in ("server-key.pem", "server-cert.pem"):  # as certbot: one, then the other
            (tmp_path / name).write_bytes((tmp_path / "renewed" / name).read_bytes())
        renewed = ssl.PEM_cert_to_DER_cert((tmp_path / "server-cert.pem").read_text())

        async def renewed_served() -> bool:
            pem = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", port))
            return ssl.PEM_cert_to_DER_cert(pem) == renewed

        await eventually(renewed_served)
        assert await status(secure, ("bob", "hunter2"), trusting) == 200
        assert reload_ok(output) == 1.0
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("basic_auth_users:\n  alice: plaintext\n",
         "basic_auth_users: Value error, user 'alice': not a bcrypt hash"),
        ("basic_auth_users:\n  alice: $1$abc$def\n", "basic_auth_users"),
        ("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing-key.pem\n",
         "tls_server_config.cert_file: no such file"),
        ("tls_server_config:\n  key_file: k.pem\n", "give exactly one of cert_file and cert"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS9\n",
         "tls_server_config.min_version"),
        ("basic_auth_user:\n  alice: x\n", "basic_auth_user: Extra inputs are not permitted"),
        ("rate_limit:\n  interval: 1s\n", "rate_limit: not supported by ebbflow"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [x]\n",
         "tls_server_config.cipher_suites: not supported"),
        ("- a list\n", "want a mapping"),
        ("basic_auth_users: {alice: [\n", "not YAML"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_naming_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_web_config(path, "outputs.prometheus.web_config_file")
    message = str(caught.value)
    assert message.startswith(f"outputs.prometheus.web_config_file: {path}"), message
    assert named in message, message


def test_a_broken_certificate_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("-----BEGIN CERTIFICATE-----\ntorn\n")
    (tmp_path / "k.pem").write_text("")
    path = write_config(tmp_path, "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n")
    with pytest.raises(ConfigError, match=r"cert_file/key_file: not a certificate and its key"):
        load_web_config(path, "w")


def test_ebbflow_run_does_not_start_on_a_bad_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yml"
    bad = write_config(tmp_path, "basic_auth_users:\n  alice: hunter2\n")
    for path, named in ((missing, "cannot read"), (bad, "not a bcrypt hash")):
        result = subprocess.run(
            [sys.executable, "-m", "ebbflow", "run", "--state", str(tmp_path / "s.db"),
             "--listen", f"127.0.0.1:{free_port()}"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin",
                 "EBBFLOW_OUTPUTS__PROMETHEUS__WEB_CONFIG_FILE": str(path)},
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "outputs.prometheus.web_config_file" in result.stderr and named in result.stderr
