"""`/api/topology`: the status as Grafana's node graph wants it (two data frames, nodes and
edges), for Grafana's Infinity data source (dashboards/README.md says how).

Nodes are the engines, the services and the replicas; edges go from an engine to each
service with replicas on it, and from the service to each replica. `mainstat` and
`secondarystat` are what the graph prints in and under a node; the `arc__*` fields (each
node's fractions, summing to 1) colour its ring by the replicas' states."""

from __future__ import annotations

from typing import Any

from .view import Status

STATES = ("running", "starting", "unhealthy", "exited", "healing")
COLOURS = {"running": "green", "starting": "blue", "unhealthy": "orange", "exited": "red",
           "healing": "purple"}  # fmt: skip


def _arcs(states: list[str]) -> dict[str, float]:
    total = len(states) or 1
    arcs = {f"arc__{s}": states.count(s) / total for s in STATES}
    if not states:
        arcs["arc__running"] = 1.0  # an empty ring still closes
    return arcs


def topology(status: Status) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for node in status.nodes:
        states = [r.state for s in status.services for r in s.replicas if r.node == node.name]
        nodes.append(
            {
                "id": f"node:{node.name}",
                "title": node.name,
                "subtitle": "engine "
                + ("up" if node.engine_up else "down" if node.engine_up is False else "unknown"),
                "mainstat": f"{len(states)} containers",
                "secondarystat": node.fault or "healthy",
                "detail__kind": "node",
                **_arcs(states),
            }
        )
    for service in status.services:
        sid = f"service:{service.name}"
        desired = "-" if service.desired is None else str(service.desired)
        nodes.append(
            {
                "id": sid,
                "title": service.name,
                "subtitle": ", ".join(service.flags) or service.policy or "no policy",
                "mainstat": f"{service.current}/{desired} replicas",
                "secondarystat": service.last_decision or "no decision yet",
                "detail__kind": "service",
                **_arcs([r.state for r in service.replicas]),
            }
        )
        for node_name in sorted({r.node for r in service.replicas}):
            edges.append(
                {"id": f"node:{node_name}>{sid}", "source": f"node:{node_name}", "target": sid}
            )
        for replica in service.replicas:
            rid = f"replica:{replica.id}"
            nodes.append(
                {
                    "id": rid,
                    "title": replica.name,
                    "subtitle": replica.node,
                    "mainstat": replica.state,
                    "secondarystat": replica.reason,
                    "color": COLOURS[replica.state],
                    "detail__kind": "replica",
                    **_arcs([replica.state]),
                }
            )
            edges.append({"id": f"{sid}>{rid}", "source": sid, "target": rid})
    return {"nodes": nodes, "edges": edges, "version": status.version, "time": status.now}


__all__ = ["topology"]
