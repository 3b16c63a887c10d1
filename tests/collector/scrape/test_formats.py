import pytest

from ebbflow.collector.scrape.formats import parse_apache, parse_nginx, parse_prometheus

APACHE = """127.0.0.1
ServerVersion: Apache/2.4.57
Total Accesses: 1200
Total kBytes: 3400
CPULoad: .0125
Uptime: 3600
ReqPerSec: .333
BusyWorkers: 3
IdleWorkers: 7
Scoreboard: _W_K_..RR
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


def test_nginx_stub_status() -> None:
    r = rows(parse_nginx(NGINX))
    assert r[("nginx_connections_active", ())] == (291, "gauge")
    assert r[("nginx_connections_handled", ())] == (16630947, "counter")
    assert r[("nginx_http_requests_total", ())] == (31070465, "counter")
    assert r[("nginx_connections_waiting", ())] == (106, "gauge")


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
