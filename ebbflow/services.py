"""Which service a container belongs to, from its labels alone."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ebbflow.model import ServiceKey

T = TypeVar("T")

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"
SWARM_SERVICE = "com.docker.swarm.service.name"
SERVICE_LABEL = "ebbflow.service"
COMPOSE_CONFIG_HASH = "com.docker.compose.config-hash"  # set by compose on what it makes
CREATED_BY_LABEL = "ebbflow.created-by"  # set by ebbflow on the replicas it makes
# Set by ebbflow on the replicas it makes: when, by its clock, in the order it numbered
# them. Copies made together are created at once, so the engine's creation times of
# siblings fall in any order; this one keeps "the newest" the highest number made last.
MADE_AT_LABEL = "ebbflow.made-at"
# Set by ebbflow on its copies: the configuration of the template they were made from. A
# copy on another engine runs the same image under another image id when the image was
# built or imported on each engine, so its own hash would read as another configuration.
CONFIGURATION_LABEL = "ebbflow.configuration"


def service_key(labels: Mapping[str, str], container_name: str) -> ServiceKey:
    """Compose project+service, else a Swarm service, else `ebbflow.service`, else the container.

    Compose labels count whether compose made the container or not.
    """
    if labels.get(COMPOSE_PROJECT) and labels.get(COMPOSE_SERVICE):
        return ServiceKey("compose", labels[COMPOSE_SERVICE], labels[COMPOSE_PROJECT])
    if labels.get(SWARM_SERVICE):
        return ServiceKey("swarm", labels[SWARM_SERVICE])
    if labels.get(SERVICE_LABEL):
        return ServiceKey("label", labels[SERVICE_LABEL])
    return ServiceKey("container", container_name)


# The container labels every container-level series carries, under cAdvisor's prefix.
SERIES_LABELS = (COMPOSE_PROJECT, COMPOSE_SERVICE, SWARM_SERVICE, SERVICE_LABEL)


def series_label_name(label: str) -> str:
    """`com.docker.compose.service` → `container_label_com_docker_compose_service`."""
    return "container_label_" + "".join(c if c.isalnum() else "_" for c in label)


def series_service(labels: Mapping[str, str]) -> ServiceKey | None:
    """The service a series belongs to, from its exported labels; None for a series of no
    container (node metrics, ebbflow's own)."""
    exported = {key: labels.get(series_label_name(key), "") for key in SERIES_LABELS}
    name = labels.get("name", "")
    if not name and not any(exported.values()):
        return None
    return service_key({k: v for k, v in exported.items() if v}, name)


def routing_name(labels: Mapping[str, str]) -> str | None:
    """The name a series is routed by between agents and deciders (the Kafka message key):
    its service's name, from the container's labels or from a `service` label (`compose:
    demo/web`, `demo/web` and `web` all give `web`); None for a series of no service. The
    name alone, because an agent cannot always tell a bare `service="web"`'s kind or
    project, and both ends must agree: services of one name share a partition."""
    service = series_service(labels)
    if service is not None:
        return service.name
    text = labels.get("service", "")
    return text.rpartition(":")[2].rpartition("/")[2] or None


def member_filters(service: ServiceKey) -> dict[str, list[str]]:
    """Docker API `filters` that select exactly the service's containers."""
    if service.kind == "compose":
        return {
            "label": [f"{COMPOSE_PROJECT}={service.project}", f"{COMPOSE_SERVICE}={service.name}"]
        }
    if service.kind == "swarm":
        return {"label": [f"{SWARM_SERVICE}={service.name}"]}
    if service.kind == "label":
        return {"label": [f"{SERVICE_LABEL}={service.name}"]}
    return {"name": [f"^/{service.name}$"]}


def is_member(service: ServiceKey, labels: Mapping[str, str], container_name: str) -> bool:
    return service_key(labels, container_name) == service


def parse_service_key(text: str) -> ServiceKey:
    """Inverse of `format_service_key`, for the CLI and the store."""
    kind, _, rest = text.partition(":")
    project, _, name = rest.rpartition("/")
    return ServiceKey(kind, name, project)


def format_service_key(service: ServiceKey) -> str:
    return (
        f"{service.kind}:{service.project}/{service.name}"
        if service.project
        else f"{service.kind}:{service.name}"
    )


def names_service(text: str, service: ServiceKey) -> bool:
    """Whether an operator's `compose:demo/web`, `demo/web` or `web` names the service."""
    full = format_service_key(service)
    return text in (full, str(service), service.name) or full.endswith(":" + text)


def defining(
    replicas: Sequence[T],
    labels: Callable[[T], Mapping[str, str]],
    created: Callable[[T], float],
) -> T:
    """The replica whose configuration defines its service: its template for new replicas
    and the source of its policy. Never one ebbflow made (a copy), unless no other is left.
    When compose made any, the newest compose made: a redeploy's configuration wins, and a
    container that only carries the service's compose labels is a guest, never the
    template. Else the oldest one started by someone other than ebbflow: the service's
    founder, whose labels a container that joins later by labels alone cannot override;
    a redeploy by hand (start the new version, remove the old) hands the role on."""
    own = [r for r in replicas if CREATED_BY_LABEL not in labels(r)]
    composed = [r for r in own if COMPOSE_CONFIG_HASH in labels(r)]
    if composed:  # the later of equals: the last seen
        return max(reversed(composed), key=created)
    return min(own or replicas, key=created)  # the earlier of equals: the first seen


def guests(replicas: Sequence[T], labels: Callable[[T], Mapping[str, str]]) -> list[T]:
    """Containers that carry a compose service's labels though neither compose nor ebbflow
    made them, beside ones compose made: monitored, but never counted, cloned or removed."""
    if not any(
        COMPOSE_CONFIG_HASH in labels(r) and CREATED_BY_LABEL not in labels(r) for r in replicas
    ):
        return []
    return [
        r
        for r in replicas
        if COMPOSE_CONFIG_HASH not in labels(r) and CREATED_BY_LABEL not in labels(r)
    ]


# What makes two replicas the same version of a service; ebbflow's own marks do not count.
CONFIGURATION_KEYS = ("Image", "Cmd", "Entrypoint", "Env", "WorkingDir", "User")
PER_REPLICA_LABELS = (CREATED_BY_LABEL, COMPOSE_NUMBER, CONFIGURATION_LABEL, MADE_AT_LABEL)


def configuration(inspect: Mapping[str, Any]) -> str:
    """A short fingerprint of the configuration a container was made from: compose's own
    config hash when compose made it (or it is a copy of one that compose made), else a
    hash of its image, command and environment, so a copy matches its template."""
    config = inspect.get("Config") or {}
    labels = config.get("Labels") or {}
    if labels.get(COMPOSE_CONFIG_HASH):
        return str(labels[COMPOSE_CONFIG_HASH])[:12]
    if labels.get(CONFIGURATION_LABEL):  # a copy ebbflow made: its template's
        return str(labels[CONFIGURATION_LABEL])[:12]
    relevant: dict[str, Any] = {key: config.get(key) for key in CONFIGURATION_KEYS}
    relevant["ImageId"] = inspect.get("Image", "")
    relevant["Labels"] = {k: v for k, v in labels.items() if k not in PER_REPLICA_LABELS}
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:12]
