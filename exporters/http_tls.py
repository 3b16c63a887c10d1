"""`tls_config` of the outputs that POST over HTTPS (remote write, InfluxDB), as a
Prometheus `remote_write` section spells it: the CA that signed the receiver's certificate
(an ebbflow decider's own, say), and this client's certificate where the receiver asks
for one. Without it, https:// is checked against the system's CAs."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, model_validator

from ebbflow.config import ConfigError, FrozenModel


class ClientTLS(FrozenModel):
    ca_file: Path | None = Field(None, description="CA certificate(s) to check the receiver.")
    cert_file: Path | None = Field(None, description="This client's certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="... and its key.")
    insecure_skip_verify: bool = Field(
        False, description="Encrypt without checking the receiver (never for production)."
    )

    @model_validator(mode="after")
    def _pair(self) -> ClientTLS:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file, or neither")
        return self

    def context(self, where: str) -> ssl.SSLContext:
        """The client context; a file that does not load is a ConfigError naming it."""
        context = ssl.create_default_context()
        try:
            if self.ca_file is not None:
                context.load_verify_locations(cafile=str(self.ca_file))
        except (ssl.SSLError, OSError) as err:
            raise ConfigError(f"{where}.ca_file: {self.ca_file}: does not load: {err}") from None
        try:
            if self.cert_file is not None and self.key_file is not None:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (ssl.SSLError, OSError) as err:
            raise ConfigError(
                f"{where}.cert_file/key_file: {self.cert_file}: not a certificate and its "
                f"key: {err}"
            ) from None
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
