"""Engines at tcp:// addresses over TLS, as Docker's own `--tlsverify` sets them up: a
real dockerd listening with a server certificate from a test CA, and ebbflow's client
with `docker.tls` (or DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the docker CLI reads
them). Without the client certificate, or with one of another CA, the engine is not
reached, and the error says why."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import aiodocker
import pytest

from ebbflow.config import ConfigError, EngineTLS, load_config
from ebbflow.docker_api import DockerHandle, tls_context
from ebbflow.engine_certs import EngineCertificates
from tests.certs import make_ca, sign
from tests.conftest import RUN_ID, TEST_LABEL
from tests.second_engine import SecondEngine

pytestmark = pytest.mark.integration


def client_folder(ca: Path, folder: Path) -> Path:
    """DOCKER_CERT_PATH's layout: ca.pem, cert.pem, key.pem."""
    sign(ca, folder, "client", "extendedKeyUsage = clientAuth\n")
    (folder / "ca.pem").write_bytes((ca / "ca.pem").read_bytes())
    (folder / "cert.pem").write_bytes((folder / "client-cert.pem").read_bytes())
    (folder / "key.pem").write_bytes((folder / "client-key.pem").read_bytes())
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_engine(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A dockerd with `--tlsverify` on a loopback port: (its tcp:// address, the CA folder)."""
    pki = tmp_path_factory.mktemp("pki")
    make_ca(pki / "ca")
    sign(pki / "ca", pki / "server", "server",
         "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")  # fmt: skip
    port = free_port()
    node = SecondEngine(tmp_path_factory.mktemp("tls"), engine, (
        "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
        "--tlscacert", str(pki / "ca" / "ca.pem"),
        "--tlscert", str(pki / "server" / "server-cert.pem"),
        "--tlskey", str(pki / "server" / "server-key.pem"),
    ))  # fmt: skip
    node.start()
    node.cli("create", "--name", f"tls-{RUN_ID}", "--label", f"{TEST_LABEL}={RUN_ID}",
             "--network", "none", engine, "true")  # fmt: skip
    try:
        yield f"tcp://127.0.0.1:{port}", pki / "ca"
    finally:
        node.remove_test_containers()
        node.remove()


async def names(handle: DockerHandle) -> list[str]:
    try:
        listed = await handle.client.containers.list(all=True)
        return [str(c._container["Names"][0]).lstrip("/") for c in listed]
    finally:
        await handle.close()


def test_an_engine_over_tls_is_reached_with_the_client_certificate(
    tls_engine: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address, ca = tls_engine
    client = client_folder(ca, tmp_path / "client")
    config = load_config(
        environ={},
        overrides={"docker": {"nodes": {"far": address}, "tls": {"cert_path": str(client)}}},
    )
    assert config.docker.tls is not None
    tls = tls_context(config.docker.tls)
    assert f"tls-{RUN_ID}" in asyncio.run(names(DockerHandle(address, 5, "far", tls=tls)))

    # As the docker CLI does it, from the environment (aiodocker reads the same variables).
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(client))
    assert f"tls-{RUN_ID}" in asyncio.run(names(DockerHandle(address, 5, "far")))


def test_without_the_right_certificate_the_engine_is_not_reached(
    tls_engine: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address, _ = tls_engine
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    with pytest.raises(aiodocker.DockerError, match=r"HTTPS server"):  # plain http to it
        asyncio.run(names(DockerHandle(address, 5, "far")))
    other_ca = tmp_path / "other"
    make_ca(other_ca)
    stranger = client_folder(other_ca, tmp_path / "stranger")  # trusts another CA only
    tls = tls_context(EngineTLS(cert_path=stranger))
    with pytest.raises(aiodocker.DockerError, match=r"CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(names(DockerHandle(address, 5, "far", tls=tls)))
    # It trusts the engine, but its own certificate is of another CA: the engine refuses.
    (stranger / "ca.pem").write_bytes((tls_engine[1] / "ca.pem").read_bytes())
    tls = tls_context(EngineTLS(cert_path=stranger))
    with pytest.raises(aiodocker.DockerError, match=r"(?i)unknown ca|certificate|reset"):
        asyncio.run(names(DockerHandle(address, 5, "far", tls=tls)))


def test_a_missing_or_broken_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "ca.pem").write_text("not a certificate")
    (folder / "cert.pem").write_text("x")
    with pytest.raises(ConfigError, match=r"docker\.tls.*no key\.pem in"):
        load_config(environ={}, overrides={"docker": {"tls": {"cert_path": str(folder)}}})
    (folder / "key.pem").write_text("x")
    with pytest.raises(ConfigError, match=r"docker\.tls\.cert_path: ca\.pem does not load"):
        tls_context(EngineTLS(cert_path=folder))


def test_a_renewed_client_certificate_is_used_without_a_restart(
    tls_engine: tuple[str, Path], tmp_path: Path
) -> None:
    """The engine refuses a certificate of another CA; the folder then gets one of the
    engine's CA, key first, and the next connection of the same context is let in. A torn
    certificate after that keeps the good one in force, and says so."""
    address, ca = tls_engine
    other_ca = tmp_path / "other"
    make_ca(other_ca)
    folder = client_folder(other_ca, tmp_path / "client")
    (folder / "ca.pem").write_bytes((ca / "ca.pem").read_bytes())  # it trusts the engine
    tls = EngineTLS(cert_path=folder)
    context = tls_context(tls)
    certs = EngineCertificates(tls, context)
    with pytest.raises(aiodocker.DockerError, match=r"(?i)unknown ca|certificate|reset"):
        asyncio.run(names(DockerHandle(address, 5, "far", tls=context)))
    assert certs.due() is False  # nothing changed

    renewed = client_folder(ca, tmp_path / "renewed")
    for name in ("key.pem", "cert.pem"):
        (folder / name).write_bytes((renewed / name).read_bytes())
    assert certs.due() is False  # seen changing: taken once it held still for a look
    assert certs.due() is True
    certs.take()
    assert certs.ok and f"tls-{RUN_ID}" in asyncio.run(
        names(DockerHandle(address, 5, "far", tls=context))
    )

    (folder / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\ntorn\n")
    assert certs.due() is False
    assert certs.due() is False and not certs.ok
    assert "cert.pem/key.pem do not load" in certs.error
    assert {s.name: s.value for s in certs.telemetry(0.0)}[
        "ebbflow_docker_tls_last_reload_successful"
    ] == 0.0
    assert f"tls-{RUN_ID}" in asyncio.run(names(DockerHandle(address, 5, "far", tls=context)))
