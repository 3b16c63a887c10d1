"""A lease per engine (ebbflow/lease_engines.py), without engines: which leases a service
needs, what the actuators may touch, and who the owner is said to be. The leases' own
holding (lock objects on real engines) is tests/ebbflow/test_lease.py's, and the whole on
the lab's three engines tests/test_engine_leases_lab.py's."""

from __future__ import annotations

import pytest

from ebbflow.config import LeaseConfig, ScopeConfig
from ebbflow.docker_api import DockerHandle
from ebbflow.lease_engines import EngineLeases
from ebbflow.model import ServiceKey
from ebbflow.nodes import Nodes, NotHeldError

NOW = 100.0  # epoch 20 of 5 s
WEB, DB, NEW = (
    ServiceKey("compose", "web", "p"),
    ServiceKey("compose", "db", "p"),
    ServiceKey("compose", "new", "p"),
)


def setup() -> tuple[Nodes, EngineLeases]:
    nodes = Nodes(DockerHandle(f"unix:///nonexistent/{n}.sock", 1, n) for n in ("n1", "n2", "n3"))
    leases = EngineLeases(nodes, ScopeConfig(), LeaseConfig(period=5), lambda: NOW)
    nodes.held = leases.holds
    for node in ("n1", "n2"):  # held: this epoch's object and the next
        leases.leases[node].owned = (20, 21)
    leases.leases["n3"].leader = "other:1:abc"
    return nodes, leases


def claimed(leases: EngineLeases, service: ServiceKey) -> None:
    """Each engine's claim of the service made (the leases' tick does it on the engines)."""
    ownership = leases.ownership
    ownership.owns(service)  # asks: the claim exists from now on
    for lease in leases.leases.values():
        if service in lease.claims.claims:
            lease.claims.claims[service].ours = True


def test_a_service_is_owned_with_the_lease_of_every_healthy_node_it_is_on() -> None:
    nodes, leases = setup()
    ownership = leases.ownership
    on = {WEB: {"n1", "n2"}, DB: {"n2", "n3"}, NEW: set()}
    ownership.nodes_of = lambda key: on[key]
    for service in on:
        claimed(leases, service)
    assert ownership.owns(WEB) and ownership.acting()
    assert ownership.owner(WEB).endswith("(the leases of n1, n2)")
    assert not ownership.owns(DB)  # n3's lease is another's
    assert ownership.owner(DB) == "n3: other:1:abc"
    assert ownership.owns(NEW)  # nowhere yet: the first healthy node's lease

    leases.leases["n1"].owned, leases.leases["n1"].leader = None, leases.owner  # lapsed
    assert ownership.owner(WEB) == "n1: nobody (this instance's lease lapsed)"
    leases.leases["n1"].owned = (20, 21)

    nodes.set_fault("n3", "engine", "does not answer")  # a lost engine needs no lease
    assert ownership.owns(DB)
    assert ownership.owner(DB).endswith("(the leases of n2)")


def test_the_actuators_touch_only_engines_whose_lease_is_held() -> None:
    nodes, _ = setup()
    assert nodes.actable_nodes() == ["n1", "n2"]
    nodes.check_held("n1")
    with pytest.raises(NotHeldError, match="node n3: another instance holds its engine's lease"):
        nodes.check_held("n3")
    nodes.set_fault("n1", "engine", "does not answer")
    assert nodes.actable_nodes() == ["n2"]  # healthy and held


def test_an_unclaimed_service_is_not_owned_and_any_change_of_a_lease_is_an_epoch() -> None:
    _, leases = setup()
    ownership = leases.ownership
    ownership.nodes_of = lambda key: {"n1"}
    assert not ownership.owns(WEB)  # the claim on n1 is asked for, not made yet
    before = ownership.epoch()
    leases.leases["n2"].transitions += 1  # n2's lease lost or won
    assert ownership.epoch() == before + 1
    leases.leases["n1"].owned = None
    assert not ownership.acting() or leases.holds("n2")
    leases.leases["n2"].owned = None
    assert not ownership.acting()
