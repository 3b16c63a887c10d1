"""An `ebbflow run` with the UDP input alone, for the tests that send it real datagrams."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import free_port
from tests.ebbflow_process import Ebbflow, wait_for


def start_with_udp(ebbflow: Ebbflow, workdir: Path) -> int:
    """Starts it listening on a free loopback port, returned once the input is up."""
    port = free_port()
    off = dict.fromkeys(("containers", "node", "probes", "scrape"), False)
    config = workdir / "ebbflow.yaml"
    config.write_text(json.dumps({"inputs": {**off, "udp": {"listen": f"127.0.0.1:{port}"}}}))
    ebbflow.start("--config", str(config))
    wait_for(
        "the UDP input",
        lambda: ebbflow.metric("ebbflow_udp_datagrams_total") == 0,
        30,
        ebbflow.assert_alive,
    )
    return port
