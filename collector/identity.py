"""The labels that say which container a series belongs to, shared by every container-level
input: cAdvisor's `id`, `name`, `image`, and a few container labels under its
`container_label_` prefix. Only these: exporting every label (or env var) would leak
secrets and explode cardinality."""

from __future__ import annotations

from ebbflow.model import ContainerInfo

EXPORTED_LABELS = (
    "com.docker.compose.project",
    "com.docker.compose.service",
    "com.docker.swarm.service.name",
    "ebbflow.service",
)


def exported_label_name(label: str) -> str:
    return "container_label_" + "".join(c if c.isalnum() else "_" for c in label)


def container_labels(info: ContainerInfo) -> dict[str, str]:
    labels = {"id": f"/docker/{info.id}", "name": info.name, "image": info.image}
    for key in EXPORTED_LABELS:
        if key in info.labels:
            labels[exported_label_name(key)] = info.labels[key]
    return labels
