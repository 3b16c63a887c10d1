"""App endpoints served by a real busybox httpd, scraped through container labels."""

from collections.abc import Callable
from pathlib import Path

import pytest

from ebbflow.bus import Bus
from ebbflow.collector.scrape import ScrapeInput
from ebbflow.docker_api import DockerHandle
from ebbflow.nodes import Nodes

from ...conftest import free_port, start_httpd
from .test_formats import APACHE, NGINX

pytestmark = pytest.mark.integration

PROM = """# HELP orders_total Orders taken.
# TYPE orders_total counter
orders_total{shop="eu",name="cart"} 42
# TYPE queue_depth gauge
queue_depth 7
"""


async def test_prometheus_apache_and_nginx_endpoints(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "metrics").write_text(PROM)
    (www / "server-status").write_text(APACHE)
    (www / "stub_status").write_text(NGINX)
    port = free_port()
    start_httpd(run_container, f"{project}-server", www, port)
    apps = {
        "prom": {"ebbflow.scrape.port": str(port)},
        "apache": {"ebbflow.scrape.port": str(port), "ebbflow.scrape.format": "apache"},
        "nginx": {"ebbflow.scrape.port": str(port), "ebbflow.scrape.format": "nginx"},
        "down": {"ebbflow.scrape.port": str(free_port())},
        "bad": {"ebbflow.scrape.port": "http"},
    }
    for name, labels in apps.items():
        args = [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]
        run_container(
            f"{project}-{name}",
            "--network",
            "host",
            "--label",
            f"com.docker.compose.project={project}",
            *args,
        )
    docker = DockerHandle()
    try:
        scrape = ScrapeInput(Bus(), Nodes([docker]), 5, 5, lambda: 1.0)
        samples = await scrape.collect_once()
    finally:
        await docker.close()
    mine = [s for s in samples if s.label("name").startswith(project)]
    by = {(s.label("name").removeprefix(f"{project}-"), s.name): s for s in mine}
    orders = by[("prom", "orders_total")]
    assert orders.value == 42 and orders.kind == "counter"
    assert orders.label("shop") == "eu"
    assert orders.label("exported_name") == "cart"  # the app's label never hides identity
    assert orders.label("container_label_com_docker_compose_project") == project
    assert by[("prom", "queue_depth")].value == 7
    assert by[("apache", "apache_accesses_total")].value == 1200
    assert by[("nginx", "nginx_http_requests_total")].value == 31070465
    up = {name: s.value for (name, metric), s in by.items() if metric == "ebbflow_scrape_up"}
    assert up == {"prom": 1, "apache": 1, "nginx": 1, "down": 0}  # "bad" is not scraped
    assert (
        "ebbflow.scrape.port: Input should be a valid integer"
        in scrape.config_errors[f"{project}-bad"][0]
    )
