"""Builds the Grafana dashboards in this folder from the panel lists below.

    python dashboards/build.py          # rewrites the *.json files
    python dashboards/build.py --check  # fails if they are out of date (the tests run it)

A dashboard is data: panels of (title, queries, unit). Every query uses the names ebbflow
serves on /metrics, and `tests/dashboards` runs each one against a real Prometheus
scraping a real ebbflow. Variables: `datasource` (any Prometheus) and, where a dashboard is
about services, `service` (multi-select, All = every service).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
RATE = "$__rate_interval"
SERVICE = 'service=~"$service"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    per_service: bool = False
    annotations: tuple[dict[str, object], ...] = field(default=())


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


DECISIONS_ANNOTATION = {
    "name": "Decisions",
    "datasource": DATASOURCE,
    "enable": True,
    "iconColor": "orange",
    "expr": f"changes(ebbflow_decisions_total{{{SERVICE}}}[1m]) > 0",
    "step": "5s",
    "titleFormat": "{{service}} scaled {{direction}}",
    "tagKeys": "service,direction",
    "useValueForTime": False,
}

DASHBOARDS = (
    Dashboard(
        "ebbflow-overview",
        "ebbflow / Cluster overview",
        "Nodes, services and their replicas, the busiest containers.",
        (
            Panel(
                "Nodes",
                (q("count(count by (instance) (ebbflow_node_cpu_percent))"),),
                kind="stat",
            ),
            Panel("Services with a policy", (q("count(ebbflow_service_replicas)"),), kind="stat"),
            Panel("Containers", (q("sum(ebbflow_containers_watched)"),), kind="stat"),
            Panel(
                "Invalid policies",
                (q("sum(1 - ebbflow_policy_valid)"),),
                kind="stat",
                description="Services whose policy labels do not validate; see `ebbflow policies`.",
            ),
            Panel("Node CPU", (q("ebbflow_node_cpu_percent", "{{instance}}"),), "percent"),
            Panel("Node memory", (q("ebbflow_node_memory_percent", "{{instance}}"),), "percent"),
            Panel("Replicas by service", (q("ebbflow_service_replicas", "{{service}}"),)),
            Panel(
                "Decisions in the last hour",
                (
                    q(
                        "sum by (service, direction) (increase(ebbflow_decisions_total[1h]))",
                        "{{service}} {{direction}}",
                    ),
                ),
            ),
            Panel(
                "Busiest containers: CPU",
                (
                    q(
                        "topk(10, sum by (name) "
                        f'(rate(container_cpu_usage_seconds_total{{name!=""}}[{RATE}])))',
                        "{{name}}",
                    ),
                ),
                "cores",
            ),
            Panel(
                "Busiest containers: memory working set",
                (
                    q(
                        'topk(10, sum by (name) (container_memory_working_set_bytes{name!=""}))',
                        "{{name}}",
                    ),
                ),
                "bytes",
            ),
        ),
    ),
    Dashboard(
        "ebbflow-service",
        "ebbflow / Service",
        "One service: replicas against the load and the policy's thresholds; decisions "
        "are annotations.",
        (
            Panel("Replicas", (q(f"ebbflow_service_replicas{{{SERVICE}}}", "{{service}}"),)),
            Panel(
                "Scaling metric and thresholds",
                (
                    q(f"ebbflow_service_metric_value{{{SERVICE}}}", "{{service}} {{metric}}"),
                    q(f"ebbflow_policy_target{{{SERVICE}}}", "target {{metric}}"),
                    q(f"ebbflow_policy_max{{{SERVICE}}}", "max {{metric}}"),
                    q(f"ebbflow_policy_min{{{SERVICE}}}", "min {{metric}}"),
                ),
                description="The window's value the rules compare (avg/max/p95 as the policy "
                "says) against the target, or the max/min of step mode.",
            ),
            Panel(
                "Decisions",
                (
                    q(
                        f"sum by (service, direction) "
                        f"(increase(ebbflow_decisions_total{{{SERVICE}}}[5m]))",
                        "{{service}} {{direction}}",
                    ),
                ),
            ),
            Panel(
                "Actions",
                (
                    q(
                        "sum by (direction, outcome) (increase(ebbflow_actions_total[5m]))",
                        "{{direction}} {{outcome}}",
                    ),
                ),
                description="What the actuator did with the decisions (all services).",
            ),
            Panel(
                "Policy valid",
                (q(f"ebbflow_policy_valid{{{SERVICE}}}", "{{service}}"),),
                kind="stat",
            ),
        ),
        per_service=True,
        annotations=(DECISIONS_ANNOTATION,),
    ),
    Dashboard(
        "ebbflow-health",
        "ebbflow / Health",
        "Probes (blackbox_exporter's names), why they fail, healing, restarts and policy errors.",
        (
            Panel("Probe success", (q("probe_success", "{{name}} {{probe}}"),)),
            Panel(
                "Availability (1h)",
                (q("avg_over_time(probe_success[1h])", "{{name}} {{probe}}"),),
                "percentunit",
                description="The share of probes that succeeded, as uptime panels read it.",
            ),
            Panel(
                "Failing probes by reason",
                (q("count by (reason) (ebbflow_probe_failure_info)", "{{reason}}"),),
            ),
            Panel(
                "HTTP phases",
                (q("probe_http_duration_seconds", "{{name}} {{phase}}"),),
                "s",
            ),
            Panel(
                "Healthy after thresholds",
                (q("ebbflow_probe_healthy", "{{name}} {{probe}}"),),
                description="The probe's verdict after its failure/success thresholds.",
            ),
            Panel("Probe duration", (q("probe_duration_seconds", "{{name}} {{probe}}"),), "s"),
            Panel("HTTP status", (q("probe_http_status_code", "{{name}}"),)),
            Panel(
                "Healing steps (5m)",
                (
                    q(
                        "sum by (service, action, outcome) "
                        "(increase(ebbflow_healing_steps_total[5m]))",
                        "{{service}} {{action}} {{outcome}}",
                    ),
                ),
                description="Restarts and replacements ebbflow made, by outcome: ok, failed, "
                "or refused (not attempted: a safety gate said no); give_up means it stopped.",
            ),
            Panel(
                "Containers given up",
                (q("ebbflow_healing_given_up", "given up"),),
                kind="stat",
                description="Containers past their restart budget; an alert fires for each.",
            ),
            Panel(
                "Nodes healthy",
                (q("ebbflow_node_healthy", "{{node}}"),),
                kind="stat",
                description="With several engines as nodes: 0 while a node's engine does not "
                "answer or its pressure limits are passed; its containers move to the others.",
            ),
            Panel(
                "Restarts in the last hour",
                (
                    q(
                        "sum by (name) (increase(ebbflow_container_restarts_total[1h]))",
                        "{{name}}",
                    ),
                ),
            ),
            Panel(
                "Policy errors",
                (q("ebbflow_policy_errors > 0", "{{service}}"),),
                description="Services with invalid labels; that one policy is off.",
            ),
        ),
    ),
    Dashboard(
        "ebbflow-host",
        "ebbflow / Host and containers",
        "The host as node_exporter dashboards show it, its containers as cAdvisor ones do: "
        "the same queries over the names ebbflow serves.",
        (
            Panel("Hosts", (q("count(node_uname_info)"),), kind="stat"),
            Panel(
                "Uptime",
                (q("node_time_seconds - node_boot_time_seconds", "{{node}}"),),
                "s",
                kind="stat",
            ),
            Panel("CPU cores", (q("machine_cpu_cores"),), kind="stat"),
            Panel(
                "CPU busy",
                (
                    q(
                        "100 * (1 - avg by (node) "
                        f'(rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}])))',
                        "{{node}}",
                    ),
                ),
                "percent",
            ),
            Panel("Load", (q("node_load1", "{{node}} 1m"), q("node_load15", "{{node}} 15m"))),
            Panel(
                "Memory used",
                (q("node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes", "{{node}}"),),
                "bytes",
            ),
            Panel(
                "Filesystem used",
                (
                    q(
                        "100 - 100 * node_filesystem_avail_bytes / node_filesystem_size_bytes",
                        "{{mountpoint}}",
                    ),
                ),
                "percent",
            ),
            Panel(
                "Disk I/O",
                (
                    q(f"rate(node_disk_read_bytes_total[{RATE}])", "{{device}} read"),
                    q(f"rate(node_disk_written_bytes_total[{RATE}])", "{{device}} written"),
                ),
                "Bps",
            ),
            Panel(
                "Network",
                (
                    q(f"rate(node_network_receive_bytes_total[{RATE}])", "{{device}} in"),
                    q(f"rate(node_network_transmit_bytes_total[{RATE}])", "{{device}} out"),
                ),
                "Bps",
            ),
            Panel(
                "TCP",
                (
                    q("node_netstat_Tcp_CurrEstab", "established"),
                    q("node_sockstat_TCP_tw", "time wait"),
                ),
            ),
            Panel(
                "Containers' CPU",
                (
                    q(
                        "sum by (name) "
                        f'(rate(container_cpu_usage_seconds_total{{name!=""}}[{RATE}]))',
                        "{{name}}",
                    ),
                    q(f'rate(container_cpu_usage_seconds_total{{id="/"}}[{RATE}])', "host"),
                ),
                "cores",
            ),
            Panel(
                "Containers' memory",
                (
                    q('container_memory_working_set_bytes{name!=""}', "{{name}}"),
                    q('container_memory_working_set_bytes{id="/"}', "host"),
                ),
                "bytes",
            ),
            Panel(
                "CPU throttling",
                (
                    q(
                        f"rate(container_cpu_cfs_throttled_periods_total[{RATE}]) / "
                        f"rate(container_cpu_cfs_periods_total[{RATE}])",
                        "{{name}}",
                    ),
                ),
                "percentunit",
                description="The share of CFS periods in which the CPU limit held the "
                "container back (what `ebbflow.scale.metric=throttling` reads).",
            ),
            Panel(
                "Tasks by state",
                (
                    q(
                        'sum by (name, state) (container_tasks_state{name!=""})',
                        "{{name}} {{state}}",
                    ),
                ),
            ),
        ),
    ),
    Dashboard(
        "ebbflow-pipeline",
        "ebbflow / Pipeline",
        "ebbflow itself: inputs, the bus, and each output's queue, spool and losses.",
        (
            Panel("Outputs up", (q("ebbflow_output_up", "{{output}}"),)),
            Panel("Output queue", (q("ebbflow_output_queue_samples", "{{output}}"),)),
            Panel("Output spool", (q("ebbflow_output_spool_bytes", "{{output}}"),), "bytes"),
            Panel(
                "Samples sent",
                (q(f"rate(ebbflow_output_sent_samples_total[{RATE}])", "{{output}}"),),
                "ops",
            ),
            Panel(
                "Retries",
                (q(f"rate(ebbflow_output_retries_total[{RATE}])", "{{output}}"),),
                "ops",
            ),
            Panel(
                "Samples dropped",
                (
                    q(
                        "sum by (output, reason) "
                        f"(rate(ebbflow_output_dropped_samples_total[{RATE}]))",
                        "{{output}} {{reason}}",
                    ),
                ),
                "ops",
            ),
            Panel("Bus queue depth", (q("ebbflow_bus_queue_depth", "{{subscriber}}"),)),
            Panel(
                "Bus drops",
                (q(f"rate(ebbflow_bus_dropped_total[{RATE}])", "{{subscriber}}"),),
                "ops",
            ),
            Panel("Inputs up", (q("ebbflow_input_up", "{{input}}"),)),
            Panel(
                "Input cycle duration",
                (q("ebbflow_input_cycle_duration_seconds", "{{input}}"),),
                "s",
            ),
            Panel(
                "Input failures",
                (q(f"rate(ebbflow_input_failures_total[{RATE}])", "{{input}}"),),
                "ops",
            ),
            Panel("Series on /metrics", (q("ebbflow_prometheus_series"),)),
            Panel(
                "Event loop lag",
                (
                    q("ebbflow_event_loop_lag_max_seconds", "largest"),
                    q(f"increase(ebbflow_event_loop_stalls_total[{RATE}])", "stalls"),
                    q(f"increase(ebbflow_wall_clock_jumps_total[{RATE}])", "clock jumps"),
                ),
                description="A stall: a timer ran over 1 s late. A clock jump: wall time moved "
                "over 1 s beside monotonic time (stepped, or the machine suspended).",
            ),
        ),
    ),
)


def templating(dashboard: Dashboard) -> list[dict[str, object]]:
    variables: list[dict[str, object]] = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        }
    ]
    if dashboard.per_service:
        definition = "label_values(ebbflow_service_replicas, service)"
        variables.append(
            {
                "name": "service",
                "label": "Service",
                "type": "query",
                "datasource": DATASOURCE,
                "definition": definition,
                "query": {"query": definition, "refId": "service"},
                "refresh": 2,
                "includeAll": True,
                "allValue": ".+",
                "multi": True,
                "current": {},
                "hide": 0,
                "sort": 1,
            }
        )
    return variables


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, object]:
    width, height = (6, 4) if panel.kind == "stat" else (12, 8)
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": width, "h": height},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": True,
            }
            for i, query in enumerate(panel.queries)
        ],
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, object]:
    panels, x, y, row_height = [], 0, 0, 0
    for number, panel in enumerate(dashboard.panels, start=1):
        item = panel_json(panel, number, x, y)
        grid = item["gridPos"]
        assert isinstance(grid, dict)
        if x + grid["w"] > 24:  # next row
            x, y = 0, y + row_height
            grid.update(x=x, y=y)
            row_height = 0
        row_height = max(row_height, grid["h"])
        x += grid["w"]
        panels.append(item)
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["ebbflow"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": templating(dashboard)},
        "annotations": {"list": [builtin, *dashboard.annotations]},
        "panels": panels,
    }


def rendered() -> dict[Path, str]:
    return {
        HERE / f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2) + "\n" for d in DASHBOARDS
    }


def main(argv: list[str]) -> int:
    stale = [
        path.name
        for path, text in rendered().items()
        if not path.exists() or path.read_text() != text
    ]
    if "--check" in argv:
        if stale:
            print(f"out of date: {', '.join(stale)}; run python dashboards/build.py")
        return 1 if stale else 0
    for path, text in rendered().items():
        path.write_text(text)
    print(f"wrote {len(DASHBOARDS)} dashboards")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
