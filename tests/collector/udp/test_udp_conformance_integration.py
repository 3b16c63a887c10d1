"""The line-protocol conformance cases over a real UDP socket into `ebbflow run`, read
back from its /metrics: every point's fields under their Prometheus names and labels with
their values, every rejection counted in ebbflow_udp_malformed_total, nothing else."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ebbflow.collector.udp.names import label_name, metric_name
from tests.ebbflow_process import Ebbflow, wait_for

from .lineprotocol_cases import CASES, Point, Rejected
from .udp_run import start_with_udp

pytestmark = pytest.mark.integration

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def expected_series() -> tuple[Series, int]:
    series: Series = {}
    rejected = 0
    for case in CASES:
        if case.precision != "ns":
            continue
        for outcome in case.outcomes:
            if isinstance(outcome, Rejected):
                rejected += 1
                continue
            assert isinstance(outcome, Point)
            labels = frozenset((label_name(k), v) for k, v in outcome.tags.items())
            for key, value in outcome.fields.items():
                if isinstance(value, str):
                    continue  # strings have no number to export
                name = metric_name(f"{outcome.measurement}_{key}")
                series[(name, labels)] = float(value)
    return series, rejected


def test_every_case_over_udp_and_out_of_metrics(tmp_path: Path, ebbflow: Ebbflow) -> None:
    port = start_with_udp(ebbflow, tmp_path)
    cases = [c for c in CASES if c.precision == "ns"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for case in cases:  # one datagram each, sent once
            sender.sendto(case.text.encode(), ("127.0.0.1", port))
    wait_for(
        "every datagram",
        lambda: ebbflow.metric("ebbflow_udp_datagrams_total") == len(cases),
        30,
        ebbflow.assert_alive,
    )
    expected, rejected = expected_series()
    got: Series = {}
    for family in text_string_to_metric_families(ebbflow.metrics()):
        for sample in family.samples:
            if sample.name.startswith("lp"):
                got[(sample.name, frozenset(sample.labels.items()))] = sample.value
    assert got == expected
    assert ebbflow.metric("ebbflow_udp_malformed_total") == rejected
    assert ebbflow.metric("ebbflow_udp_kernel_drops_total") == 0
    assert (len(expected), rejected) == (108, 74)  # the suite itself: no case goes missing
