"""Certificates for the TLS tests, made by the real openssl: a CA, and keys it signs."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path) -> None:
    folder.mkdir(parents=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=ebbflow test CA", cwd=folder)  # fmt: skip


def sign(ca: Path, out: Path, name: str, extensions: str) -> None:
    """`name`-key.pem and `name`-cert.pem in `out`, signed by the CA in `ca`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.ext").write_text(extensions)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
            "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=out)  # fmt: skip
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca / "ca.pem"), "-CAkey",
            str(ca / "ca-key.pem"), "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2",
            "-extfile", f"{name}.ext", cwd=out)  # fmt: skip
