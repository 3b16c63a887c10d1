"""The labels that say which container a series belongs to, shared by every container-level
input: cAdvisor's `id`, `name`, `image`, and a few container labels under its
`container_label_` prefix. Only these: exporting every label (or env var) would leak
secrets and explode cardinality. With several nodes, `node` tells same-named containers
on different engines apart."""

from __future__ import annotations

from ebbflow.model import ContainerInfo
from ebbflow.services import SERIES_LABELS, series_label_name


def container_labels(info: ContainerInfo, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """`extra`: the labels the operator chose to export as well (`container_labels`)."""
    labels = {"id": f"/docker/{info.id}", "name": info.name, "image": info.image}
    for key in (*SERIES_LABELS, *extra):
        if key in info.labels:
            labels[series_label_name(key)] = info.labels[key]
    if info.node:
        labels["node"] = info.node
    return labels
