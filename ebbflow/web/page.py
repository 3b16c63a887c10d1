"""The status page and the per-service page, rendered on the server from a `Status`
(Jinja2, escaping everything: a container's name and labels are input from outside)."""

from __future__ import annotations

import time
from typing import Any

import jinja2

from ebbflow.services import parse_service_key
from ebbflow.state import DecisionStore

from .view import Status

HISTORY_SHOWN = 50  # rows on the main page; the state file and `ebbflow decisions` have all
EXPLAIN_ROWS = 20


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    return f"{seconds / 60:.0f} min ago"


class Pages:
    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("ebbflow.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["clock"] = _clock
        self.env.filters["age"] = _age

    def index(self, status: Status, live_only: bool = False) -> str:
        template = "live_index.html" if live_only else "index.html"
        return self.env.get_template(template).render(
            status=status, events="/events", history=HISTORY_SHOWN
        )

    def service(
        self, status: Status, name: str, store: DecisionStore | None, live_only: bool = False
    ) -> str:
        template = "live_service.html" if live_only else "service.html"
        return self.env.get_template(template).render(
            status=status,
            name=name,
            service=status.service(name),
            explain=explain(store, name),
            events=f"/events/service/{name}",
        )


def explain(store: DecisionStore | None, name: str) -> dict[str, Any]:
    """What `ebbflow explain` shows of a service, from the state file."""
    if store is None:
        return {"startup": None, "decisions": [], "healing": []}
    key = parse_service_key(name)
    return {
        "startup": store.startup(key),
        "decisions": store.recent(EXPLAIN_ROWS, key),
        "healing": store.recent_steps(EXPLAIN_ROWS, key),
    }


__all__ = ["Pages", "explain"]
