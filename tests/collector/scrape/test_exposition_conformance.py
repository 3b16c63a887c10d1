"""An app's own families through `ebbflow run` to `/metrics`: a busybox httpd serves a
Prometheus page with a histogram, a summary, a counter, an untyped series and an app label
that clashes with the container's identity twice. Out of ebbflow they are the same
families (HELP, TYPE, every sample), and `promtool check metrics` on ebbflow's whole
output finds nothing but what it finds in the names node_exporter and cAdvisor themselves
export."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, start_httpd
from tests.ebbflow_process import Ebbflow, wait_for

from .test_formats import HISTOGRAM_APP

pytestmark = pytest.mark.integration

APP = (
    HISTOGRAM_APP
    + """# HELP orders Orders by shop.
orders{shop="eu",name="cart",exported_name="basket"} 2
"""
)
# What promtool says about the names ebbflow keeps because the exporters it replaces have
# them, and dashboards query them so: node_exporter's /proc field names (node_memory_Active_bytes,
# node_netstat_Tcp_InSegs, node_sockstat_TCP_inuse), its entropy in bits, and cAdvisor's
# failcnt counter.
EXPORTERS_OWN = re.compile(
    r"^node_\w+ metric names should be written in 'snake_case'"
    r"|^node_entropy_\w+_bits use base unit \"bytes\" instead of \"bits\"$"
    r"|^container_memory_failcnt counter metrics should have \"_total\" suffix$"
)


def test_scraped_families_keep_help_type_and_samples_and_promtool_is_clean(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "metrics").write_text(APP)
    port = free_port()
    start_httpd(run_container, f"{project}-app", www, port)
    run_container(
        f"{project}-scraped", "--network", "host", "--label", f"ebbflow.scrape.port={port}"
    )
    ebbflow.start()
    wait_for(
        "the app's series",
        lambda: ebbflow.metric("req_seconds_count", name=f"{project}-scraped") == 5,
        30,
        ebbflow.assert_alive,
    )
    text = ebbflow.metrics()

    families = {f.name: f for f in text_string_to_metric_families(text)}
    req = families["req_seconds"]
    assert (req.type, req.documentation) == ("histogram", "Request latency.")
    mine = [s for s in req.samples if s.labels.get("name") == f"{project}-scraped"]
    assert sorted((s.name, s.labels.get("le", ""), s.value) for s in mine) == [
        ("req_seconds_bucket", "+Inf", 5.0),
        ("req_seconds_bucket", "0.1", 3.0),
        ("req_seconds_count", "", 5.0),
        ("req_seconds_sum", "", 1.5),
    ]
    assert families["rpc_seconds"].type == "summary"
    assert {s.name for s in families["rpc_seconds"].samples} == {
        "rpc_seconds",
        "rpc_seconds_sum",
        "rpc_seconds_count",
    }
    assert families["jobs"].type == "counter"
    assert families["orders"].type == "unknown"  # untyped on the app's page too
    orders = next(s for s in families["orders"].samples if s.labels["name"] == f"{project}-scraped")
    assert orders.labels["exported_name"] == "basket"  # the app's own, kept
    assert orders.labels["exported_exported_name"] == "cart"  # the app's `name`, moved on

    promtool = shutil.which("promtool")
    assert promtool, "scripts/test installs prometheus (promtool)"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (checked.stdout + checked.stderr).splitlines()
        if line.strip() and not EXPORTERS_OWN.match(line)
    ]
    assert problems == []
