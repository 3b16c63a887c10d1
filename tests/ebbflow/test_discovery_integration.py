"""The inventory is the core's: with only the `containers` input turned off in the file,
`ebbflow run` still probes and scrapes labelled containers (before, the label-driven
inputs found no container at all, and said nothing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import free_port, start_httpd
from tests.ebbflow_process import Ebbflow, wait_for

pytestmark = pytest.mark.integration


def test_probes_and_scrape_work_with_the_containers_input_off(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "metrics").write_text("# TYPE queue_depth gauge\nqueue_depth 7\n")
    port = free_port()
    name = f"{project}-app"
    start_httpd(
        run_container, name, www, port,
        "--label", f"ebbflow.scrape.port={port}",
        "--label", f"aliyun.probe.url=http://container:{port}/metrics",
        "--label", "ebbflow.health.interval=1",
    )  # fmt: skip
    config = tmp_path / "ebbflow.yaml"
    config.write_text("inputs:\n  containers: false\n")
    ebbflow.start("--config", str(config))
    wait_for(
        "the probe and the scrape",
        lambda: (
            ebbflow.metric("probe_success", name=name) == 1
            and ebbflow.metric("queue_depth", name=name) == 7
        ),
        30,
        ebbflow.assert_alive,
    )
    text = ebbflow.metrics()
    assert "container_cpu_usage_seconds_total{" not in text  # that input is off
    assert ebbflow.metric("ebbflow_input_up", input="containers") is None
    assert ebbflow.metric("ebbflow_input_up", input="scrape") == 1
    wait_for(  # the telemetry cycle may have run before the stream connected
        "the event stream shown connected",
        lambda: ebbflow.metric("ebbflow_docker_events_connected") == 1,
        5,
    )
    status = ebbflow.readyz()
    assert status is not None and status[0] == 200, status
    assert "discovery" in status[1]["components"]  # type: ignore[operator]
