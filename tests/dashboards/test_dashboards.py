"""The Grafana dashboards: well-formed for provisioning, and every query they hold returns
data from a real Prometheus scraping a real `ebbflow run` that watches real containers."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import (
    compose_containers,
    free_port,
    start_prometheus,
    start_victoria_metrics,
)
from tests.ebbflow_process import Ebbflow, wait_for

FOLDER = Path(__file__).resolve().parents[2] / "dashboards"


def build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_build", FOLDER / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(FOLDER.glob("*.json"))}


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target, annotation and query variable."""
    found = [
        (f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    found += [
        (f"annotation {a['name']!r}", a["expr"])
        for a in dashboard["annotations"]["list"]
        if "expr" in a
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
            assert match, variable["definition"]
            found.append((f"variable {variable['name']!r}", match.group(1)))
    return found


def test_the_json_is_what_build_py_makes() -> None:
    assert build_module().main(["--check"]) == 0, "run python dashboards/build.py"


def test_the_json_has_what_grafana_provisioning_needs() -> None:
    found = dashboards()
    assert set(found) == {
        "ebbflow-overview.json",
        "ebbflow-service.json",
        "ebbflow-health.json",
        "ebbflow-host.json",
        "ebbflow-pipeline.json",
    }
    uids = [d["uid"] for d in found.values()]
    assert len(set(uids)) == len(uids)
    for name, d in found.items():
        assert d["id"] is None, name  # a fixed id would clash in Grafana's database
        assert 0 < len(d["uid"]) <= 40 and re.fullmatch(r"[\w-]+", d["uid"]), name
        assert d["title"] and isinstance(d["schemaVersion"], int), name
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        ids = [p["id"] for p in d["panels"]]
        assert len(set(ids)) == len(ids) and d["panels"], name
        for panel in d["panels"]:
            where = f"{name}: {panel['title']}"
            assert panel["type"] in {"timeseries", "stat"}, where
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], where
            refs = [t["refId"] for t in panel["targets"]]
            assert len(set(refs)) == len(refs), where
            for target in panel["targets"]:
                assert target["expr"].strip(), where
            used = set(re.findall(r"\$(\w+)", json.dumps(panel["targets"])))
            assert used <= set(variables) | {"__rate_interval"}, (where, used)

    provider = yaml.safe_load((FOLDER / "provisioning" / "dashboards.yaml").read_text())
    assert provider["apiVersion"] == 1
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"]
    sources = yaml.safe_load((FOLDER / "provisioning" / "datasources.yaml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"


# -- against a real Prometheus ---------------------------------------------------------


@dataclass
class Scene:
    prometheus: str
    project: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": expr, "time": f"{time.time():.3f}"})
        with urllib.request.urlopen(f"{self.prometheus}/api/v1/query?{params}", timeout=10) as r:
            answer = json.loads(r.read())
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def compose(project: str, service: str, number: int) -> list[str]:
    return [
        "--label",
        f"com.docker.compose.project={project}",
        "--label",
        f"com.docker.compose.service={service}",
        "--label",
        f"com.docker.compose.container-number={number}",
    ]


def label_args(labels: dict[str, str]) -> list[str]:
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


@pytest.fixture
def scene(
    run_container: Callable[..., str],
    project: str,
    tmp_path: Path,
    ebbflow: Ebbflow,
) -> Iterator[Scene]:
    """Two services with policies (step and proportional), probes that pass and one that
    fails (its container restarted by ebbflow), a bad policy label, an InfluxDB output;
    ebbflow scrapes all of it and Prometheus scrapes ebbflow every second. Waits for web's
    scale-in (2 → 1) to show in Prometheus."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("ok\n")
    api_port, dead_port = free_port(), free_port()
    web = {
        "aliyun.auto_scaling.max_cpu": "90",
        "aliyun.auto_scaling.min_cpu": "50",
        "aliyun.auto_scaling.min_instances": "1",
        "ebbflow.scale.window": "3",
        "ebbflow.scale.warmup": "6",  # no decision for 6 s: Prometheus sees the counters at 0
    }
    api = {
        "ebbflow.scale.metric": "cpu",
        "ebbflow.scale.target": "50",
        "aliyun.probe.url": f"http://container:{api_port}/index.html",
    }
    run_container(
        f"{project}-api-1", "--network", "host", "-v", f"{www}:/www:ro",
        *compose(project, "api", 1), *label_args(api),
        cmd=("httpd", "-f", "-p", f"127.0.0.1:{api_port}", "-h", "/www"),
    )  # fmt: skip
    broken = {"aliyun.auto_scaling.max_cpu": "abc"}  # invalid: left alone entirely
    run_container(
        f"{project}-broken-1", "--network", "none", *compose(project, "broken", 1),
        *label_args(broken),
    )  # fmt: skip
    sick = {
        "aliyun.probe.url": f"http://container:{dead_port}/",
        "ebbflow.health.interval": "1",
        "ebbflow.heal.backoff": "1",  # restarted by ebbflow within the scene
    }
    run_container(
        f"{project}-sick-1", "--network", "host", *compose(project, "sick", 1),
        *label_args(sick),
    )  # fmt: skip

    vm_port, prom_port = free_port(), free_port()
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        "outputs:\n  prometheus: {}\n"
        f"  influxdb: {{url: 'http://127.0.0.1:{vm_port}', api: v1, flush_interval: 0.5}}\n"
    )
    with (
        start_victoria_metrics(vm_port, tmp_path / "vm"),
        start_prometheus(prom_port, tmp_path, [f"127.0.0.1:{ebbflow.port}"]),
    ):
        ebbflow.start("--config", str(config))
        scene = Scene(f"http://127.0.0.1:{prom_port}", project)
        # Prometheus applies new targets only every 5 s; web comes once it scrapes, so its
        # decision counters are seen at 0 before the scale-in makes them 1.
        wait_for("Prometheus to scrape ebbflow", lambda: bool(scene.query("up == 1")), 30)
        for number in (1, 2):
            run_container(
                f"{project}-web-{number}", "--network", "none", *compose(project, "web", number),
                *label_args(web),
            )  # fmt: skip
        web_in = f'ebbflow_decisions_total{{service="{project}/web",direction="in"}}'
        wait_for(
            "Prometheus to see web's decision counter at 0",
            lambda: bool(scene.query(f"{web_in} == 0")),
            20,
        )
        wait_for(
            "web to scale in to 1",
            lambda: len(compose_containers(project, "web")) == 1,
            60,
            ebbflow.assert_alive,
        )
        wait_for(
            "Prometheus to see the decision",
            lambda: bool(scene.query(f"{web_in} > 0")),
            20,
        )
        time.sleep(3)  # a few more scrapes, so rate() and increase() have two points
        yield scene
        assert ebbflow.stop() == 0


@pytest.mark.integration
def test_prometheus_scrapes_ebbflow_and_every_panel_query_returns_data(scene: Scene) -> None:
    series = scene.query(f'container_cpu_usage_seconds_total{{name="{scene.project}-api-1"}}')
    assert len(series) == 1
    labels = series[0]["metric"]
    assert labels["job"] == "ebbflow"
    assert labels["container_label_com_docker_compose_service"] == "api"
    assert labels["id"].startswith("/docker/") and labels["image"]

    substitutions = {"$__rate_interval": "1m", "$service": ".+"}
    empty = []
    checked = 0
    for name, dashboard in dashboards().items():
        for where, expr in queries(dashboard):
            for variable, value in substitutions.items():
                expr = expr.replace(variable, value)
            checked += 1
            if not scene.query(expr):
                empty.append(f"{name} {where}: {expr}")
    assert not empty, "queries that returned nothing:\n" + "\n".join(empty)
    assert checked >= 30

    services = {s["metric"]["service"] for s in scene.query("ebbflow_service_replicas")}
    assert {f"{scene.project}/web", f"{scene.project}/api"} <= services
    reasons = {s["metric"]["reason"] for s in scene.query("ebbflow_probe_failure_info")}
    assert reasons == {"connection_refused"}
    failing = {s["metric"]["name"] for s in scene.query("probe_success == 0")}
    assert failing == {f"{scene.project}-sick-1"}
    assert all("reason" not in s["metric"] for s in scene.query("probe_success"))


@pytest.mark.integration
def test_the_exporter_process_and_host_panels_people_have_find_ebbflow(scene: Scene) -> None:
    """The queries of the usual "exporter process" and "node network" panels, as Prometheus
    answers them: the process_* series, the build info, the host's network totals under
    cAdvisor's id="/", and node series with node_exporter's labels (no `node` of ours)."""
    for expr in ('rate(process_cpu_seconds_total{job="ebbflow"}[1m])',
                 'process_resident_memory_bytes{job="ebbflow"}',
                 'process_open_fds{job="ebbflow"} / process_max_fds{job="ebbflow"}',
                 'time() - process_start_time_seconds{job="ebbflow"}',
                 'rate(container_network_receive_bytes_total{id="/"}[1m])'):  # fmt: skip
        assert scene.query(expr), expr
    (build,) = scene.query("ebbflow_build_info")
    assert {"version", "revision", "pythonversion"} <= set(build["metric"])
    assert build["metric"]["revision"] != "unknown"  # a checkout: its HEAD
    (load,) = scene.query('node_load1{job="ebbflow"}')
    assert set(load["metric"]) == {"__name__", "instance", "job"}
