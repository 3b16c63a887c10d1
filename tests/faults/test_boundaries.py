"""Every input from outside is bounded, and probes stay inside their container: a hostile
container's labels, endpoint or events cost only their own bound, never every instance's."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import IMAGE, RUN_ID, TEST_LABEL, docker_cli, free_port
from tests.ebbflow_process import Ebbflow, wait_for

from .harness import HostileProcess, HostileServer, create_container, rss_mib

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def test_a_probe_of_the_hosts_loopback_from_a_none_container_sends_nothing(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow
) -> None:
    port = free_port()
    servers = [HostileServer(port, "good", host) for host in ("127.0.0.1", "127.0.0.2")]
    try:
        for n, host in enumerate(("127.0.0.1", "127.0.0.2")):
            run_container(
                f"{project}-{n}", "--network", "none",
                "--label", f"aliyun.probe.url=http://{host}:{port}/admin",
                "--label", "ebbflow.health.body_regex=secret",
                "--label", "ebbflow.health.interval=1",
            )  # fmt: skip
        ebbflow.start()
        for n in range(2):
            wait_for(
                f"the named error of {project}-{n}",
                lambda n=n: (
                    ebbflow.metric("ebbflow_probe_config_errors", name=f"{project}-{n}") == 1
                ),
                20,
                ebbflow.assert_alive,
            )
        time.sleep(4)  # four probe intervals
        assert [s.requests for s in servers] == [0, 0]
        logs = ebbflow.logs()
        for host in ("127.0.0.1", "127.0.0.2"):
            assert (
                f"aliyun.probe.url: host {host} is not this container's own address (container)"
                in logs
            )
    finally:
        for server in servers:
            server.close()


def test_a_megabyte_label_started_and_killed_30_times_never_breaks_the_event_stream(
    engine: str, project: str, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    ebbflow.start()
    wait_for("connected", lambda: ebbflow.metric("ebbflow_docker_events_connected") == 1, 20)
    labels = {TEST_LABEL: RUN_ID, "big.note": "x" * 1_048_576}
    samples: list[float | None] = []
    for n in range(30):
        name = f"{project}-big-{n}"
        create_container(name, IMAGE, labels, ["sleep", "600"])
        docker_cli("start", name)
        docker_cli("kill", name)
        docker_cli("rm", name)
        samples.append(ebbflow.metric("ebbflow_docker_events_connected"))
    wait_for(
        "the skipped events counted",
        lambda: (ebbflow.metric("ebbflow_docker_events_skipped_total", node="", reason="too_long")
                 or 0) >= 30 * 3,
        30,
        ebbflow.assert_alive,
    )  # fmt: skip
    assert samples == [1.0] * 30  # connected throughout
    logs = ebbflow.logs()
    assert "engine unavailable" not in logs and "LineTooLong" not in logs
    assert ebbflow.metric("ebbflow_docker_events_connected") == 1.0
    skipped = ebbflow.metric("ebbflow_docker_events_skipped_total", node="", reason="too_long")
    # start, kill, die and destroy carry the label (stop too, after a kill: not always)
    assert skipped is not None and 30 * 3 <= skipped <= 30 * 5


@pytest.mark.quiet  # its 1 s cadence is measured on two cores: not beside a long test
def test_hostile_scrape_targets_cost_their_bound_and_delay_no_one_else(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    kinds = ("huge", "endless", "series", "drip", "invalid_utf8", "good")
    ports = {kind: free_port() for kind in kinds}
    # the measured target in a process of its own: the hostile ones, writing hundreds of
    # MiB from this process, would delay its answers here (the GIL), not ebbflow's scrapes
    good_server = HostileProcess(ports["good"], "good")
    servers = {kind: HostileServer(port, kind) for kind, port in ports.items() if kind != "good"}
    try:
        for kind, port in ports.items():
            run_container(
                f"{project}-{kind}", "--network", "host",
                "--label", f"ebbflow.scrape.port={port}",
            )  # fmt: skip
        config = tmp_path / "ebbflow.yaml"
        config.write_text("inputs: {scrape: {interval: 1, timeout: 3}}\n")
        ebbflow.start("--config", str(config))
        wait_for("serving", lambda: ebbflow.metric("ebbflow_ready") is not None, 30)
        assert ebbflow.proc is not None
        before = rss_mib(ebbflow.proc.pid)
        began = time.monotonic()
        peak = before
        while time.monotonic() - began < 30:
            ebbflow.assert_alive()
            peak = max(peak, rss_mib(ebbflow.proc.pid))
            time.sleep(0.5)
        up = {kind: ebbflow.metric("ebbflow_scrape_up", name=f"{project}-{kind}") for kind in kinds}
        assert up == {k: (1.0 if k == "good" else 0.0) for k in kinds}  # bytes that are not
        # UTF-8 are replaced, and the page they make is no exposition: down, its error bounded
        exceeded = {
            limit: ebbflow.metric("ebbflow_scrape_limit_exceeded_total", limit=limit)
            for limit in ("body_size", "sample")
        }
        assert (exceeded["body_size"] or 0) >= 20 and (exceeded["sample"] or 0) >= 20
        closed = time.monotonic()
        good_server.close()
        good = good_server.times
        recent = [t for t in good if t >= began + 5]
        gaps = [b - a for a, b in itertools.pairwise(recent)]
        # the good target kept its 1 s interval (jitter ±10 %), whatever the others did: no
        # scrape of it skipped (a 2 s gap), and one a second over the window. Counted over
        # the window's own length, not from the first answer to the last: the server's
        # process, on two busy cores, may answer a request late and the next on time.
        assert len(recent) >= 22 and max(gaps) < 2.0, gaps
        rate = len(recent) / (closed - (began + 5))
        assert 0.85 <= rate <= 1.15, (rate, gaps)
        print(f"hostile scrape targets: RSS {before:.0f} MiB, peak {peak:.0f} MiB")
        # the bound (benchmarks/README.md): 10 MiB a body, four hostile targets at once
        assert peak - before < 120, (before, peak)
        longest = max(len(line) for line in ebbflow.logs().splitlines())
        assert longest < 8192
    finally:
        good_server.close()
        for server in servers.values():
            server.close()
