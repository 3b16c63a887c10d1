"""The real `statsd` and `datadog` client packages (what apps use) sending every metric
type into `ebbflow run` over loopback UDP; /metrics shows the expected values, and what
is refused is counted."""

from __future__ import annotations

from pathlib import Path

import pytest
import statsd
from datadog.dogstatsd import DogStatsd

from tests.ebbflow_process import Ebbflow, wait_for

from .udp_run import start_with_udp

pytestmark = pytest.mark.integration


def test_statsd_and_dogstatsd_clients(tmp_path: Path, ebbflow: Ebbflow) -> None:
    port = start_with_udp(ebbflow, tmp_path)

    plain = statsd.StatsClient("127.0.0.1", port)
    plain.incr("orders")
    plain.incr("orders", 4)
    plain.decr("orders")  # a decrement: refused and counted, the counter stays at 5
    plain.gauge("queue", 10)
    plain.gauge("queue", -3, delta=True)
    plain.timing("render", 12)
    plain.timing("render", 30)
    for member in ("ann", "bob", "ann"):
        plain.set("visitors", member)

    dog = DogStatsd(host="127.0.0.1", port=port, disable_telemetry=True)
    dog.increment("jobs", 2, tags=["queue:mail", "canary"])
    dog.increment("jobs", 3, tags=["queue:mail"])
    dog.gauge("temp", 21.5, tags=["room:a"])
    dog.histogram("size", 100)
    dog.distribution("latency", 0.25)
    dog.distribution("latency", 0.75)
    dog.set("uniques", "x")
    dog.gauge_with_timestamp("backfill", 7, 1_700_000_000)
    dog.service_check("db.up", DogStatsd.CRITICAL, tags=["env:prod"], message="no route")
    dog.event("Deploy failed", "rollback", alert_type="error", tags=["svc:api"])
    dog.close_socket()
    sent = 3 + 2 + 2 + 3 + 2 + 1 + 1 + 2 + 1 + 1 + 1 + 1  # one datagram per call

    wait_for(
        "every datagram",
        lambda: ebbflow.metric("ebbflow_udp_datagrams_total") == sent,
        30,
        ebbflow.assert_alive,
    )
    m = ebbflow.metric
    assert m("orders_total") == 5
    assert m("ebbflow_udp_counter_decrements_total") == 1
    assert m("ebbflow_udp_malformed_total") == 1  # that decrement, nothing else
    assert m("queue") == 7
    assert (m("render_count"), m("render_sum"), m("render")) == (2, 42, 30)
    assert m("visitors") == 2
    assert m("jobs_total", queue="mail", canary="true") == 2
    assert m("jobs_total", queue="mail") in (2, 3)  # metric() matches a subset of labels
    text = ebbflow.metrics()
    assert 'jobs_total{queue="mail"} 3.0' in text  # kept apart from the canary series
    assert m("temp", room="a") == 21.5
    assert (m("size_count"), m("size_sum")) == (1, 100)
    assert (m("latency_count"), m("latency_sum")) == (2, 1.0)
    assert m("uniques") == 1
    assert m("backfill") == 7  # an old client timestamp does not expire it on arrival
    assert m("dogstatsd_service_check_status", check="db.up", env="prod") == 2
    assert m("dogstatsd_events_total", alert_type="error", svc="api") == 1
    assert m("ebbflow_udp_events_total") == 1
    assert "event from 127.0.0.1:" in ebbflow.logs() and "Deploy failed" in ebbflow.logs()
