"""The multi-node lab (tests/lab.py, scripts/lab) comes up as three Swarm managers in
network namespaces of their own, runs a service across them, and goes down leaving nothing:
no namespace, bridge, iptables rule, engine process, mount or folder."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests import lab

pytestmark = pytest.mark.integration


def leftovers() -> dict[str, object]:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    processes = subprocess.run(
        ["pgrep", "-af", str(lab.RUN)], capture_output=True, text=True
    ).stdout
    return {
        "namespaces": sorted(n for n in lab.NODES if n in namespaces.split()),
        "bridge": lab.sh("ip", "link", "show", lab.BRIDGE, check=False).returncode == 0,
        "forward_rule": lab.sh("iptables", "-C", *lab.FORWARD_RULE, check=False).returncode == 0,
        "mounts": lab.mounts_under(lab.RUN, lab.DATA),
        "processes": processes.strip(),
        "folders": [str(p) for p in (lab.RUN, lab.DATA) if p.exists()],
    }


CLEAN = {
    "namespaces": [],
    "bridge": False,
    "forward_rule": False,
    "mounts": [],
    "processes": "",
    "folders": [],
}


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root: namespaces and engines")
def test_lab_comes_up_as_three_managers_and_goes_down_leaving_nothing() -> None:
    if leftovers() != CLEAN:
        pytest.skip(f"a lab is up already (scripts/lab); not taking it down: {leftovers()}")
    try:
        lab.up()
        first = lab.NODE_LIST[0]
        nodes = first.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}").splitlines()
        assert sorted(nodes) == ["n1 Ready", "n2 Ready", "n3 Ready"]
        first.docker("service", "create", "-q", "--detach", "--name", "lab-smoke",
                     "--replicas", "3", "--no-resolve-image",
                     "--placement-pref", "spread=node.id", lab.IMAGE, "sleep", "600")  # fmt: skip
        lab.wait_until(
            "three running tasks",
            lambda: (
                first.docker(
                    "service",
                    "ps",
                    "lab-smoke",
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.CurrentState}}",
                ).count("Running")
                == 3
            ),
            timeout=90,
        )
        placed = first.docker("service", "ps", "lab-smoke", "--format", "{{.Node}}").split()
        assert sorted(placed) == ["n1", "n2", "n3"]
        # each node's address is its own, its engine's Swarm port reachable on it
        for n in lab.NODE_LIST:
            with socket.create_connection((n.address, 2377), timeout=5):
                pass
        # no engine looked for a registry: tasks start from the image each node has
        for n in lab.NODE_LIST:
            log = (n.data / "dockerd.log").read_text()
            assert "registry-1.docker.io" not in log and "pulling image" not in log, n.name
        assert "default" not in lab.sh(*first.inside("ip", "route")).stdout  # only the bridge
    finally:
        lab.down()
    assert leftovers() == CLEAN
    assert not Path(lab.NODE_LIST[0].netns).exists()
