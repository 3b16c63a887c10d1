"""Nothing lost, nothing twice: a real `ebbflow run` ships samples an application pushes
over UDP to a real VictoriaMetrics (InfluxDB v1 API), which goes away and comes back.

Every sample carries its index as its value, so the server's raw export shows exactly
which arrived and how often.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port, start_victoria_metrics
from tests.ebbflow_process import Ebbflow, wait_for

pytestmark = pytest.mark.integration


class Pusher:
    """Sends one line-protocol sample per datagram to ebbflow's UDP input."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self.run = uuid.uuid4().hex[:8]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def push_for(self, seconds: float, rate: float = 20.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stamp = time.time_ns()
            line = f"ebbflow_fault,run={self.run} value={self.sent} {stamp}"
            self.sock.sendto(line.encode(), ("127.0.0.1", self.port))
            self.sent += 1
            time.sleep(1 / rate)


def arrived(url: str, run: str) -> list[float]:
    """Every raw sample the server holds for this run, duplicates included."""
    try:
        urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).close()
        query = urllib.parse.urlencode({"match[]": f'{{__name__=~"ebbflow_fault.*",run="{run}"}}'})
        with urllib.request.urlopen(f"{url}/api/v1/export?{query}", timeout=10) as resp:
            rows = [json.loads(line) for line in resp.read().decode().splitlines() if line]
    except OSError:
        return []
    return sorted(v for row in rows for v in row["values"])


def configure(tmp_path: Path, udp_port: int, vm_port: int) -> Path:
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        f"""
inputs:
  udp: {{listen: "127.0.0.1:{udp_port}"}}
  scrape: false  # it runs beside other tests (scripts/test): their targets are not its
  probes: false
outputs:
  prometheus: {{}}
  influxdb:
    url: http://127.0.0.1:{vm_port}
    api: v1
    database: ebbflow
    batch_size: 50
    flush_interval: 0.2
    timeout: 2
    backoff_initial: 0.2
    backoff_max: 2
    spool_dir: {tmp_path / "spool"}
"""
    )
    return config


def started(ebbflow: Ebbflow, config: Path) -> None:
    ebbflow.start("--config", str(config))
    wait_for(
        "ebbflow to serve /metrics",
        lambda: ebbflow.metric("ebbflow_output_up", output="influxdb") is not None,
        30,
        ebbflow.assert_alive,
    )


@pytest.mark.beside  # 40 s, nearly all of it waiting out the outage
def test_a_server_down_for_30s_gets_every_sample_once(tmp_path: Path, ebbflow: Ebbflow) -> None:
    udp_port, vm_port, data = free_port(), free_port(), tmp_path / "vm"
    url = f"http://127.0.0.1:{vm_port}"
    pusher = Pusher(udp_port)
    with start_victoria_metrics(vm_port, data):
        started(ebbflow, configure(tmp_path, udp_port, vm_port))
        pusher.push_for(3)
        wait_for("the first samples", lambda: len(arrived(url, pusher.run)) > 0, 20)
    # The server is down now; samples keep flowing for 30 s.
    pusher.push_for(10)
    assert ebbflow.metric("ebbflow_output_up", output="influxdb") == 0
    pusher.push_for(20)
    spooled = ebbflow.metric("ebbflow_output_spool_bytes", output="influxdb")
    assert spooled is not None and spooled > 0
    with start_victoria_metrics(vm_port, data):
        pusher.push_for(3)
        wait_for(
            f"all {pusher.sent} samples", lambda: len(arrived(url, pusher.run)) >= pusher.sent, 60
        )
        time.sleep(1)  # a duplicate would come now
        assert arrived(url, pusher.run) == [float(i) for i in range(pusher.sent)]
        assert ebbflow.metric("ebbflow_udp_samples_total") == pusher.sent  # none lost on the way in
        wait_for(
            "the spool to drain",
            lambda: ebbflow.metric("ebbflow_output_spool_bytes", output="influxdb") == 0,
            10,
        )
    assert ebbflow.metric("ebbflow_output_dropped_samples_total", output="influxdb") == 0
    assert ebbflow.stop() == 0
    assert "output influxdb is unavailable" in ebbflow.logs()
    assert "output influxdb recovered" in ebbflow.logs()
    assert "Traceback" not in ebbflow.logs()


def test_sigkill_while_down_then_restart_sends_every_spooled_sample(
    tmp_path: Path, ebbflow: Ebbflow
) -> None:
    udp_port, vm_port = free_port(), free_port()
    url = f"http://127.0.0.1:{vm_port}"
    config = configure(tmp_path, udp_port, vm_port)
    pusher = Pusher(udp_port)
    started(ebbflow, config)  # the server is not there
    pusher.push_for(4)
    wait_for(
        "every sample received and on disk",
        lambda: (
            ebbflow.metric("ebbflow_udp_samples_total") == pusher.sent
            and ebbflow.metric("ebbflow_output_queue_samples", output="influxdb") == 0
        ),
        15,
    )
    ebbflow.kill()
    with start_victoria_metrics(vm_port, tmp_path / "vm"):
        started(ebbflow, config)
        wait_for(
            f"all {pusher.sent} samples", lambda: len(arrived(url, pusher.run)) >= pusher.sent, 60
        )
        time.sleep(1)
        assert arrived(url, pusher.run) == [float(i) for i in range(pusher.sent)]
        assert ebbflow.stop() == 0
