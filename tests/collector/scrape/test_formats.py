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
    return {
        (name, tuple(sorted(labels.items()))): (value, kind) for name, labels, value, kind in parsed
    }


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
    assert r[("queue_depth", ())] == (2, "gauge")


@pytest.mark.parametrize("parse", [parse_apache, parse_nginx])
def test_wrong_page_is_an_error(parse) -> None:
    with pytest.raises(ValueError, match="not an"):
        parse("<html>hello</html>")
