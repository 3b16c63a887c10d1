import pytest

from ebbflow.collector.scrape.formats import parse_apache, parse_nginx, parse_prometheus

APACHE = """127.0.0.1
ServerVersion: Apache/2.4.57 (Debian)
ServerMPM: event
ParentServerConfigGeneration: 2
ParentServerMPMGeneration: 1
Load1: 0.35
Load5: 0.38
Load15: 0.34
Total Accesses: 1200
Total kBytes: 3400
Total Duration: 5150
CPUUser: .5
CPUSystem: .25
CPUChildrenUser: .25
CPUChildrenSystem: 0
CPULoad: .0125
Uptime: 3600
ReqPerSec: .333
BytesPerSec: 967.1
BusyWorkers: 3
IdleWorkers: 7
Processes: 3
Stopping: 1
ConnsTotal: 5
ConnsAsyncWaitIO: 0
ConnsAsyncWriting: 1
ConnsAsyncKeepAlive: 2
ConnsAsyncClosing: 1
Scoreboard: _W_K_..RR
"""
TENGINE = """Active connections: 2
server accepts handled requests request_time
 10 10 40 1234
Reading: 0 Writing: 1 Waiting: 1
"""
NGINX = """Active connections: 291
server accepts handled requests
 16630948 16630947 31070465
Reading: 6 Writing: 179 Waiting: 106
"""


def rows(parsed):
    return {(r.name, tuple(sorted(r.labels.items()))): (r.value, r.kind) for r in parsed}


def test_apache_mod_status() -> None:
    r = rows(parse_apache(APACHE))
    assert r[("apache_accesses_total", ())] == (1200, "counter")
    assert r[("apache_sent_kilobytes_total", ())] == (3400, "counter")
    assert r[("apache_cpuload", ())] == (0.0125, "gauge")
    assert r[("apache_workers", (("state", "busy"),))] == (3, "gauge")
    assert r[("apache_scoreboard", (("state", "reply"),))][0] == 1
    assert r[("apache_scoreboard", (("state", "read"),))][0] == 2
    assert r[("apache_scoreboard", (("state", "open_slot"),))][0] == 2
    assert r[("apache_scoreboard", (("state", "dns"),))][0] == 0  # every state, as the exporter
    assert r[("apache_connections", (("state", "total"),))] == (5, "gauge")
    assert r[("apache_connections", (("state", "writing"),))] == (1, "gauge")
    assert r[("apache_connections", (("state", "keepalive"),))] == (2, "gauge")
    assert r[("apache_connections", (("state", "closing"),))] == (1, "gauge")
    assert r[("apache_cpu_time_ms_total", (("type", "user"),))] == (750, "counter")
    assert r[("apache_cpu_time_ms_total", (("type", "system"),))] == (250, "counter")
    assert r[("apache_duration_ms_total", ())] == (5150, "counter")
    assert r[("apache_load", (("interval", "5min"),))] == (0.38, "gauge")
    assert r[("apache_generation", (("type", "config"),))] == (2, "gauge")
    assert r[("apache_processes", (("state", "stopping"),))] == (1, "gauge")
    assert r[("apache_version", ())] == (2.04057, "gauge")
    assert r[("apache_info", (("mpm", "event"), ("version", "Apache/2.4.57 (Debian)")))][0] == 1
    assert r[("apache_uptime_seconds_total", ())] == (3600, "counter")
    # the page's lifetime averages are not rates: not exported under rate names
    assert not any("per_second" in name for name, _ in r)


def test_nginx_stub_status() -> None:
    r = rows(parse_nginx(NGINX))
    assert r[("nginx_connections_active", ())] == (291, "gauge")
    assert r[("nginx_connections_handled", ())] == (16630947, "counter")
    assert r[("nginx_http_requests_total", ())] == (31070465, "counter")
    assert r[("nginx_connections_waiting", ())] == (106, "gauge")
    assert r[("nginx_up", ())] == (1, "gauge")


def test_tengine_stub_status() -> None:
    r = rows(parse_nginx(TENGINE))
    assert r[("nginx_http_requests_total", ())] == (40, "counter")
    assert r[("tengine_request_time_ms_total", ())] == (1234, "counter")
    assert r[("nginx_connections_active", ())] == (2, "gauge")


def test_real_rates_from_counter_changes_between_scrapes() -> None:
    from ebbflow.bus import Bus
    from ebbflow.collector.scrape import ScrapeInput
    from ebbflow.docker_api import DockerHandle
    from ebbflow.nodes import Nodes

    scrape = ScrapeInput(Bus(), Nodes([DockerHandle("unix:///nonexistent")]), 5, 5, lambda: 0.0)
    first = parse_apache(APACHE)
    assert scrape.rates("c1", "apache", first, 100.0) == []  # nothing to compare with
    later = parse_apache(APACHE.replace("Total Accesses: 1200", "Total Accesses: 1260"))
    rates = {row.name: row.value for row in scrape.rates("c1", "apache", later, 110.0)}
    assert rates == {"apache_requests_per_second": 6.0, "apache_bytes_per_second": 0.0}
    restarted = parse_apache(APACHE.replace("Total Accesses: 1200", "Total Accesses: 3"))
    assert "apache_requests_per_second" not in {
        row.name for row in scrape.rates("c1", "apache", restarted, 120.0)
    }


def test_prometheus_text() -> None:
    text = '# TYPE jobs_total counter\njobs_total{queue="a"} 4\nqueue_depth 2\n'
    r = rows(parse_prometheus(text))
    assert r[("jobs_total", (("queue", "a"),))] == (4, "counter")
    assert r[("queue_depth", ())] == (2, "untyped")  # no TYPE line: untyped, as Prometheus has it


HISTOGRAM_APP = """# HELP req_seconds Request latency.
# TYPE req_seconds histogram
req_seconds_bucket{le="0.1"} 3
req_seconds_bucket{le="+Inf"} 5
req_seconds_sum 1.5
req_seconds_count 5
# HELP rpc_seconds RPC latency.
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds_sum 9
rpc_seconds_count 30
# HELP jobs_total Jobs done.
# TYPE jobs_total counter
jobs_total 4
"""


def test_histograms_and_summaries_stay_one_family_with_help_and_type() -> None:
    parsed = {r.name + str(sorted(r.labels.items())): r for r in parse_prometheus(HISTOGRAM_APP)}
    bucket = parsed["req_seconds_bucket[('le', '0.1')]"]
    assert (bucket.value, bucket.kind, bucket.family, bucket.help) == (
        3,
        "histogram",
        "req_seconds",
        "Request latency.",
    )
    assert parsed["req_seconds_sum[]"].family == parsed["req_seconds_count[]"].family
    assert parsed["rpc_seconds[('quantile', '0.5')]"].kind == "summary"
    assert parsed["rpc_seconds_count[]"].family == "rpc_seconds"
    jobs = parsed["jobs_total[]"]
    assert (jobs.kind, jobs.family, jobs.help) == ("counter", "", "Jobs done.")


def test_openmetrics_counters_stay_counters_and_created_is_a_gauge() -> None:
    text = (
        "# TYPE jobs counter\n# HELP jobs Jobs done.\njobs_total 4\njobs_created 1700000000\n"
        '# TYPE build info\nbuild_info{version="1"} 1\n# EOF\n'
    )
    parsed = {
        r.name: r for r in parse_prometheus(text, "application/openmetrics-text; version=1.0.0")
    }
    assert (parsed["jobs_total"].kind, parsed["jobs_total"].value) == ("counter", 4)
    assert parsed["jobs_created"].kind == "gauge"
    assert parsed["build_info"].kind == "gauge"


@pytest.mark.parametrize("parse", [parse_apache, parse_nginx])
def test_wrong_page_is_an_error(parse) -> None:
    with pytest.raises(ValueError, match="not an"):
        parse("<html>hello</html>")
