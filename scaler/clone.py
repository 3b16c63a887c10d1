"""A new replica's create request, made from a running replica's inspect output.

This is what `docker-compose scale` does: the clone gets the template's full config
(image, command, env, labels, mounts, network mode, restart policy, resources) and only
what must differ per container is changed or dropped.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ebbflow.model import ServiceKey
from ebbflow.services import (
    COMPOSE_NUMBER,
    CONFIGURATION_LABEL,
    CREATED_BY_LABEL,
    MADE_AT_LABEL,
    configuration,
)

__all__ = ["CREATED_BY_LABEL"]  # where the tests read it

# Config keys the create API takes as they come from inspect.
CONFIG_KEYS = (
    "Image",
    "Cmd",
    "Entrypoint",
    "Env",
    "Labels",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Healthcheck",
    "StopSignal",
    "StopTimeout",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Shell",
    "Domainname",
    "ArgsEscaped",
)
BUILTIN_NETWORKS = {"default", "bridge", "host", "none"}


def replica_number(name: str, labels: Mapping[str, str]) -> int | None:
    if labels.get(COMPOSE_NUMBER, "").isdigit():
        return int(labels[COMPOSE_NUMBER])
    match = re.search(r"[_-](\d+)$", name)
    return int(match.group(1)) if match else None


def next_free_number(used: Iterable[int]) -> int:
    taken = set(used)
    n = 1
    while n in taken:
        n += 1
    return n


def replica_name(service: ServiceKey, template_name: str, number: int) -> str:
    """`PROJECT_SERVICE_N`, or `PROJECT-SERVICE-N` when the template follows compose v2."""
    sep = "-" if template_name.startswith(f"{service.project}-{service.name}-") else "_"
    parts = [service.project, service.name] if service.project else [service.name]
    return sep.join([*parts, str(number)])


def clone_request(
    template: Mapping[str, Any],
    number: int,
    created_by: str = "scale-out",
    made_at: float | None = None,
) -> dict[str, Any]:
    config = template.get("Config") or {}
    host = copy.deepcopy(template.get("HostConfig") or {})
    request: dict[str, Any] = {k: copy.deepcopy(config[k]) for k in CONFIG_KEYS if k in config}
    hostname = config.get("Hostname", "")
    if hostname and hostname != template.get("Id", "")[:12]:
        request["Hostname"] = hostname  # only an explicitly set hostname is the service's
    labels = dict(request.get("Labels") or {})
    if COMPOSE_NUMBER in labels:
        labels[COMPOSE_NUMBER] = str(number)
    labels[CREATED_BY_LABEL] = created_by
    labels[CONFIGURATION_LABEL] = configuration(template)
    labels.pop(MADE_AT_LABEL, None)  # a copy of a copy: its own time, not its template's
    if made_at is not None:
        labels[MADE_AT_LABEL] = f"{made_at:.6f}"
    request["Labels"] = labels
    # A fixed host port cannot be shared: clones publish on an ephemeral port, like compose.
    for bindings in (host.get("PortBindings") or {}).values():
        for binding in bindings or []:
            binding["HostPort"] = ""
    request["HostConfig"] = host
    mode = host.get("NetworkMode", "")
    networks = (template.get("NetworkSettings") or {}).get("Networks") or {}
    if mode not in BUILTIN_NETWORKS and mode in networks:
        request["NetworkingConfig"] = {
            "EndpointsConfig": {mode: endpoint_config(networks[mode], template)}
        }
    return request


def endpoint_config(endpoint: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """Aliases carry over (the service name); addresses and the template's own id do not."""
    own = template.get("Id", "")[:12]
    aliases = [a for a in endpoint.get("Aliases") or [] if a != own]
    return {"Aliases": aliases} if aliases else {}


def extra_networks(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """User-defined networks beyond the primary one: connected after create."""
    mode = (template.get("HostConfig") or {}).get("NetworkMode", "")
    networks = (template.get("NetworkSettings") or {}).get("Networks") or {}
    return {
        name: endpoint_config(ep, template)
        for name, ep in networks.items()
        if name != mode and name not in BUILTIN_NETWORKS
    }
