"""A container's app endpoint, declared by `ebbflow.scrape.*` labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from ebbflow.config import FrozenModel
from ebbflow.labels import parse_labels

from .formats import DEFAULT_PATHS

LABEL_FIELDS = {
    "ebbflow.scrape.port": "port",
    "ebbflow.scrape.path": "path",
    "ebbflow.scrape.format": "format",
    "ebbflow.scrape.scheme": "scheme",
}
PREFIXES = ("ebbflow.scrape.",)


class ScrapeSpec(FrozenModel):
    port: int = Field(ge=1, le=65535)
    path: str | None = Field(None, pattern=r"^/")
    format: Literal["prometheus", "apache", "nginx"] = "prometheus"
    scheme: Literal["http", "https"] = "http"

    def url(self, address: str) -> str:
        """Only called with an address: a container without one cannot be scraped."""
        path = self.path or DEFAULT_PATHS[self.format]
        return f"{self.scheme}://{address}:{self.port}{path}"


def parse_scrape(labels: Mapping[str, str]) -> tuple[ScrapeSpec | None, tuple[str, ...]]:
    if not any(key.startswith(PREFIXES) for key in labels):
        return None, ()
    return parse_labels(labels, LABEL_FIELDS, ScrapeSpec, prefixes=PREFIXES)
