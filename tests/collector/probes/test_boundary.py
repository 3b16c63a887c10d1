"""Probes stay inside their container: only its own addresses, whatever a label says."""

from __future__ import annotations

import pytest

from ebbflow.collector.probes.boundary import allowed
from ebbflow.model import ContainerInfo

BRIDGED = ContainerInfo("c1", "web", "img", network_mode="bridge", address="172.17.0.5",
                        addresses=("172.17.0.5", "fd00::5"))  # fmt: skip
HOST = ContainerInfo("c2", "db", "img", network_mode="host", address="127.0.0.1",
                     addresses=("127.0.0.1",))  # fmt: skip
NONE = ContainerInfo("c3", "job", "img", network_mode="none")
REMOTE_HOST = ContainerInfo("c4", "api", "img", network_mode="host", address="10.213.0.12",
                            addresses=("10.213.0.12",), node="n2")  # fmt: skip


@pytest.mark.parametrize(
    ("url", "info"),
    [
        ("http://container:8080/health", BRIDGED),
        ("http://172.17.0.5:8080/", BRIDGED),
        ("http://[fd00::5]:80/", BRIDGED),
        ("tcp://127.0.0.1:5432", HOST),  # the node's loopback is a host-network container's
        ("http://127.0.0.2:80/", HOST),
        ("http://localhost:80/", HOST),
        ("http://10.213.0.12:80/", REMOTE_HOST),
    ],
)
def test_its_own_addresses_are_allowed(url: str, info: ContainerInfo) -> None:
    assert allowed(url, info) is None


@pytest.mark.parametrize(
    ("url", "info"),
    [
        ("http://127.0.0.1:9781/admin", NONE),  # the host's loopback is not a none container's
        ("http://127.0.0.2:80/", NONE),
        ("http://localhost/", BRIDGED),
        ("http://172.17.0.6:80/", BRIDGED),  # a neighbour
        ("http://169.254.169.254/latest/meta-data/", BRIDGED),
        ("http://db.internal:5432/", BRIDGED),
        ("http://127.0.0.1:80/", REMOTE_HOST),  # ebbflow's loopback is not node n2's
    ],
)
def test_anything_else_is_refused_by_name(url: str, info: ContainerInfo) -> None:
    why = allowed(url, info)
    assert why is not None and why.startswith("host ") and "not this container's own" in why


def test_the_operator_may_trust_more_in_config_never_a_label() -> None:
    trusted = ("10.0.0.0/8", "db.internal")
    assert allowed("http://10.1.2.3/", BRIDGED, trusted) is None
    assert allowed("http://db.internal:5432/", BRIDGED, trusted) is None
    assert allowed("http://11.0.0.1/", BRIDGED, trusted) is not None
