"""The web config file: TLS and basic auth for everything ebbflow serves over HTTP
(`/metrics`, the status page, `/api/*`, `/readyz`), in the format of the Prometheus
exporter toolkit's `web-config.yml` (node_exporter's `--web.config.file`), so one file
serves both.

Read at start: a wrong field, a hash that is not bcrypt, a missing or unreadable
certificate fails the start and names the field. While serving, `live.py` reads it again
when it changes. What the toolkit has and ebbflow does not
(cipher and curve choices, HTTP/2, rate limits, client SAN lists) is refused by name rather
than ignored, so nobody believes a setting is in force that is not.

Paths are relative to the file's own folder, as the toolkit reads them.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ebbflow.config import ConfigError, FrozenModel, describe_validation_error, read_bounded

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
MAX_FILE = 1 << 20  # a web config is a few lines; a megabyte is a mistake
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}  # fmt: skip
ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
UNSUPPORTED = {
    "tls_server_config": ("cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
                          "client_allowed_sans"),
    "http_server_config": ("http2",),
    "": ("rate_limit",),
}  # fmt: skip


class TLSServerConfig(FrozenModel):
    cert_file: str = ""
    key_file: str = ""
    cert: str = ""  # inline PEM, instead of cert_file
    key: str = ""
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str = ""
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"

    @model_validator(mode="after")
    def _complete(self) -> TLSServerConfig:
        if bool(self.cert_file) == bool(self.cert):
            raise ValueError("give exactly one of cert_file and cert")
        if bool(self.key_file) == bool(self.key):
            raise ValueError("give exactly one of key_file and key")
        verifies = self.client_auth_type in (
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        )
        if verifies and not self.client_ca_file:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} is above max_version")
        return self


class HTTPServerConfig(FrozenModel):
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or any(c in name for c in ":\r\n ") or any(c in text for c in "\r\n"):
                raise ValueError(f"header {name!r}: not a valid header name and value")
        return value


class WebConfig(FrozenModel):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _users(cls, value: dict[str, str]) -> dict[str, str]:
        for user, hashed in value.items():
            if not user or ":" in user:
                raise ValueError(f"user {user!r}: a name, without ':'")
            if (
                not isinstance(hashed, str)
                or not hashed.startswith(BCRYPT_PREFIXES)
                or len(hashed) != 60
            ):
                raise ValueError(
                    f"user {user!r}: not a bcrypt hash (want $2y$/$2b$/$2a$ and 60 "
                    'characters, as `htpasswd -nBC 10 ""` prints)'
                )
        return value


def load_web_config(
    path: Path, where: str, empty_ok: bool = True
) -> tuple[WebConfig, ssl.SSLContext | None]:
    """The file, validated, and the TLS context it gives (None: plain HTTP). Every error
    names `where`, the file and the field. `empty_ok=False` (a file read again while
    serving): an empty one is refused, as it is more likely a rewrite under way than a
    wish for no TLS and no auth."""
    text = read_bounded(path, MAX_FILE, where)
    if not empty_ok and not text.strip():
        raise ConfigError(
            f"{where}: {path} is empty (a write under way?); write {{}} to serve without "
            "TLS and basic auth"
        )
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: {path}: not YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {path}: want a mapping at the top level")
    _refuse_unsupported(data, f"{where}: {path}")
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError("; ".join(describe_validation_error(err, f"{where}: {path}"))) from None
    tls = _tls(config.tls_server_config, path.parent, f"{where}: {path}: tls_server_config")
    return config, tls


def _refuse_unsupported(data: dict[str, object], where: str) -> None:
    for section, names in UNSUPPORTED.items():
        part = data.get(section) if section else data
        if not isinstance(part, dict):
            continue
        for name in names:
            if name in part:
                field = f"{section}.{name}" if section else name
                raise ConfigError(f"{where}: {field}: not supported by ebbflow (remove it)")


def _tls(config: TLSServerConfig | None, base: Path, where: str) -> ssl.SSLContext | None:
    if config is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[config.min_version]
    context.maximum_version = TLS_VERSIONS[config.max_version]
    cert = _file(base, config.cert_file, f"{where}.cert_file") if config.cert_file else None
    key = _file(base, config.key_file, f"{where}.key_file") if config.key_file else None
    inline: list[Path] = []
    try:
        if cert is None or key is None:
            inline = _inline(config, base)
            cert = cert or inline[0]
            key = key or inline[-1]
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as err:
            raise ConfigError(
                f"{where}: cert_file/key_file: not a certificate and its key: {err}"
            ) from None
    finally:
        for tmp in inline:
            tmp.unlink(missing_ok=True)
    if config.client_auth_type != "NoClientCert":
        context.verify_mode = (
            ssl.CERT_REQUIRED
            if config.client_auth_type in ("RequireAnyClientCert", "RequireAndVerifyClientCert")
            else ssl.CERT_OPTIONAL
        )
        if config.client_ca_file:
            ca = _file(base, config.client_ca_file, f"{where}.client_ca_file")
            try:
                context.load_verify_locations(ca)
            except (ssl.SSLError, OSError) as err:
                raise ConfigError(f"{where}.client_ca_file: {err}") from None
    return context


def _file(base: Path, name: str, where: str) -> Path:
    path = base / name
    if not path.is_file():
        raise ConfigError(f"{where}: no such file: {path}")
    return path


def _inline(config: TLSServerConfig, base: Path) -> list[Path]:
    """Inline PEM (`cert`, `key`) to files for the ssl module, removed right after."""
    made = []
    for text in (config.cert, config.key):
        if not text:
            continue
        handle = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)  # noqa: SIM115
        with handle:
            handle.write(text)
        made.append(Path(handle.name))
    return made


__all__ = ["WebConfig", "load_web_config"]
