"""A container's probe, declared by labels: the seed dialect plus `ebbflow.health.*`."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Mapping
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import re2  # type: ignore[import-untyped]
from pydantic import Field, field_validator, model_validator

from ebbflow.config import FrozenModel
from ebbflow.labels import parse_labels

LABEL_FIELDS = {
    "aliyun.probe.url": "url",
    "aliyun.probe.cmd": "cmd",
    "aliyun.probe.initial_delay_seconds": "initial_delay",
    "aliyun.probe.timeout_seconds": "timeout",
    "ebbflow.health.url": "url",
    "ebbflow.health.cmd": "cmd",
    "ebbflow.health.initial_delay": "initial_delay",
    "ebbflow.health.timeout": "timeout",
    "ebbflow.health.interval": "interval",
    "ebbflow.health.expected_status": "expected_status",
    "ebbflow.health.body_regex": "body_regex",
    "ebbflow.health.failure_threshold": "failure_threshold",
    "ebbflow.health.success_threshold": "success_threshold",
}
PREFIXES = ("aliyun.probe.", "ebbflow.health.")

Reason = Literal[
    "",
    "timeout",
    "connection_refused",
    "status_mismatch",
    "body_mismatch",
    "exec_failed",
    "error",
]


def parse_status_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """`200-299,301` → ((200, 299), (301, 301))."""
    ranges = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        lo, hi = int(low), int(high or low)
        if not 100 <= lo <= hi <= 599:
            raise ValueError(f"{part.strip()!r} is not an HTTP status or range of them")
        ranges.append((lo, hi))
    return tuple(ranges)


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    """RE2: matching takes time linear in the body, so no label can freeze the loop
    (Python's `re` backtracks: `^(a+)+$` on 29 bytes takes seconds)."""
    return re2.compile(pattern)


MIN_INTERVAL = 1.0  # seconds; the probes input's `min_interval` default


class ProbeSpec(FrozenModel):
    url: str | None = None
    cmd: tuple[str, ...] | None = None
    initial_delay: float = Field(0.0, ge=0)
    timeout: float = Field(2.0, gt=0)
    interval: float = Field(10.0, gt=0)
    expected_status: tuple[tuple[int, int], ...] = ((200, 399),)
    body_regex: str | None = None
    failure_threshold: int = Field(3, ge=1)
    success_threshold: int = Field(1, ge=1)

    @field_validator("cmd", mode="before")
    @classmethod
    def _split_cmd(cls, value: Any) -> Any:
        if isinstance(value, str):
            argv = shlex.split(value)
            if not argv:
                raise ValueError("empty command")
            return tuple(argv)
        return value

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compiled(value)
            except re2.error as err:
                raise ValueError(f"not a regular expression RE2 accepts: {err}") from None
        return value

    @field_validator("expected_status", mode="before")
    @classmethod
    def _ranges(cls, value: Any) -> Any:
        return parse_status_ranges(value) if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "tcp"):
            raise ValueError("the scheme must be http, https or tcp")
        if not parts.hostname or (parts.port is None and parts.scheme == "tcp"):
            raise ValueError("needs a host and, for tcp, a port (tcp://container:PORT)")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.url is None) == (self.cmd is None):
            raise ValueError("declare exactly one of a probe url or a probe cmd")
        return self

    @property
    def kind(self) -> Literal["http", "tcp", "cmd"]:
        if self.cmd is not None:
            return "cmd"
        return "tcp" if self.url and self.url.startswith("tcp:") else "http"

    def target(self, address: str) -> str | None:
        """The URL with `container` replaced by the container's address; None when the
        container has none (network `none`): it cannot be reached, and falling back to
        this host's loopback would probe something else."""
        assert self.url is not None
        parts = urlsplit(self.url)
        if parts.hostname != "container":
            return self.url
        if not address:
            return None
        return parts._replace(netloc=parts.netloc.replace("container", address, 1)).geturl()

    def status_ok(self, status: int) -> bool:
        return any(lo <= status <= hi for lo, hi in self.expected_status)

    def body_matches(self, body: str) -> bool:
        return self.body_regex is None or compiled(self.body_regex).search(body) is not None


def parse_probe(
    labels: Mapping[str, str], min_interval: float = MIN_INTERVAL
) -> tuple[ProbeSpec | None, tuple[str, ...]]:
    """(None, ()) when the container declares no probe. An interval under `min_interval`
    is an error: a label must not be able to make ebbflow burn a core."""
    if not any(key.startswith(PREFIXES) for key in labels):
        return None, ()
    spec, errors = parse_labels(labels, LABEL_FIELDS, ProbeSpec, prefixes=PREFIXES)
    if spec is not None and spec.interval < min_interval:
        return None, (
            f"ebbflow.health.interval: must be at least {min_interval:g}s, the probes input's "
            f"min_interval (got {labels['ebbflow.health.interval']!r})",
        )
    return spec, errors
