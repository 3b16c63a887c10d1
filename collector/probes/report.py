"""What `ebbflow policies` shows of a service's probe: registered with the plugin, so the
core asks for it without importing the probes input."""

from __future__ import annotations

from collections.abc import Sequence

from ebbflow.model import ContainerInfo
from ebbflow.plugins import LabelReport

from .collector import shared_key
from .spec import parse_probe


def describe(definer: ContainerInfo, replicas: Sequence[ContainerInfo]) -> LabelReport:
    probe, errors = parse_probe(definer.labels)
    fields = {
        "probe": probe.model_dump(exclude_defaults=True, mode="json") if probe else None,
        "probe_errors": list(errors),
    }
    summary = ""
    if probe is not None:
        shown = probe.model_dump(exclude_defaults=True)
        summary = "probe[" + " ".join(f"{k}={v}" for k, v in shown.items()) + "]"
    if errors:
        summary = (summary + "  " if summary else "") + "PROBE INVALID: " + "; ".join(errors)
    return LabelReport(fields, summary, tuple(shared_warnings(replicas)))


def shared_warnings(replicas: Sequence[ContainerInfo]) -> list[str]:
    """Host-network replicas whose probes go to one address: probed once, for the service."""
    targets: dict[str, list[str]] = {}
    for info in replicas:
        spec, _ = parse_probe(info.labels)
        key = shared_key(info, spec) if spec is not None else None
        if key is not None:
            targets.setdefault(key[1], []).append(info.name)
    return [
        f"replicas {', '.join(sorted(names))} on host networking probe the same address "
        f"{target}: probed once, as the service's probe; its failures restart no replica"
        for target, names in sorted(targets.items())
        if len(names) > 1
    ]
