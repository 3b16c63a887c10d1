"""End to end on the real engine: `ebbflow run` scales a labelled service out and back in.

The replicas burn CPU while a bind-mounted flag file exists, so the test controls the load
from outside; ebbflow runs as its own process, as an operator would run it.
"""

from __future__ import annotations

import http.server
import itertools
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ebbflow.model import ServiceKey
from ebbflow.state import DecisionStore, StoredDecision

from .conftest import compose_containers, free_port, start_httpd, start_prometheus
from .ebbflow_process import Ebbflow, wait_for

pytestmark = pytest.mark.integration

BURN = "while :; do if [ -f /flag/burn ]; then :; else sleep 0.2; fi; done"


def replicas(project: str, service: str = "burn") -> int:
    return len(compose_containers(project, service))


def decisions(state: Path, project: str, service: str = "burn") -> list[StoredDecision]:
    if not state.exists():
        return []
    store = DecisionStore(state)
    try:
        return list(reversed(store.recent(service=ServiceKey("compose", service, project))))
    finally:
        store.close()


def start_burner(
    run_container: Callable[..., str], project: str, flag: Path, cooldown: int
) -> None:
    run_container(
        f"{project}_burn_1",
        "--init",
        "--network",
        "none",
        "--cpus",
        "0.5",
        "-v",
        f"{flag}:/flag:ro",
        "--label",
        f"com.docker.compose.project={project}",
        "--label",
        "com.docker.compose.service=burn",
        "--label",
        "com.docker.compose.container-number=1",
        "--label",
        "aliyun.scale=1",
        "--label",
        "aliyun.auto_scaling.max_cpu=40",
        "--label",
        "aliyun.auto_scaling.min_cpu=10",
        "--label",
        "aliyun.auto_scaling.step=1",
        "--label",
        "aliyun.auto_scaling.max_instances=3",
        "--label",
        "aliyun.auto_scaling.min_instances=1",
        "--label",
        f"ebbflow.scale.cooldown={cooldown}",
        "--label",
        "ebbflow.scale.window=3",
        cmd=("sh", "-c", BURN),
    )


def test_scales_out_under_load_and_back_in(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    flag = tmp_path / "flag"
    flag.mkdir()
    (flag / "burn").touch()
    start_burner(run_container, project, flag, cooldown=5)
    ebbflow.start()
    seen: list[int] = []

    def observe() -> None:
        ebbflow.assert_alive()
        seen.append(replicas(project))

    wait_for("3 replicas", lambda: seen[-1] == 3, 90, observe)
    names = [f"{project}_burn_{n}" for n in (1, 2, 3)]
    replicas_gauge = f'ebbflow_service_replicas{{service="{project}/burn"}} 3.0'

    def all_on_metrics() -> bool:
        # ebbflow's own gauges follow within one interval of the container series
        text = ebbflow.metrics()
        return replicas_gauge in text and all(f'name="{n}"' in text for n in names)

    wait_for("every replica and the replica gauge on /metrics", all_on_metrics, 15)
    compose = f'container_label_com_docker_compose_project="{project}"'
    assert f"container_cpu_usage_seconds_total{{{compose}" in ebbflow.metrics()
    # The new replicas' start-up (decision → first sample) is learned and shown.
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "ebbflow",
            "explain",
            f"compose:{project}/burn",
            "--state",
            str(ebbflow.state),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    explained = shown.stdout
    learned = re.search(r"start-up ([0-9.]+)s, learned from (\d+) new replica", explained)
    assert learned, (explained, shown.stderr)
    assert 0 < float(learned[1]) < 30 and int(learned[2]) >= 1, explained

    (flag / "burn").unlink()
    wait_for("1 replica", lambda: seen[-1] == 1, 90, observe)
    assert ebbflow.stop() == 0
    assert max(seen) == 3, "never beyond max_instances"

    made = decisions(ebbflow.state, project)
    assert [(d.from_replicas, d.to_replicas) for d in made] == [(1, 2), (2, 3), (3, 2), (2, 1)]
    assert all(d.outcome == "ok" for d in made), [d.detail for d in made]
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(made)]
    assert min(gaps) >= 5, gaps
    assert "cpu avg" in made[0].reason and made[0].inputs["cpu_avg"] > 40
    # the first decision had only the policy's guess; the second knew the first start-up
    assert (made[0].inputs["startup_learned"], made[0].inputs["startup"]) == (0, 30)
    assert made[1].inputs["startup_learned"] == 1 and 0 < made[1].inputs["startup"] < 30
    assert "Traceback" not in ebbflow.logs()


def test_a_restart_between_actions_keeps_the_cooldown(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    cooldown = 10
    flag = tmp_path / "flag"
    flag.mkdir()
    (flag / "burn").touch()
    start_burner(run_container, project, flag, cooldown=cooldown)

    def nth_decision(n: int) -> StoredDecision:
        wait_for(
            f"decision {n}",
            lambda: len(decisions(ebbflow.state, project)) >= n,
            60,
            ebbflow.assert_alive,
        )
        return decisions(ebbflow.state, project)[n - 1]

    ebbflow.start()
    first = nth_decision(1)
    assert ebbflow.stop() == 0
    restarted_at = time.time()
    assert restarted_at - first.timestamp < cooldown - 3, "restart must fall inside the cooldown"
    ebbflow.start()
    second = nth_decision(2)
    assert ebbflow.stop() == 0
    assert second.timestamp > restarted_at  # decided by the restarted process
    assert second.timestamp - first.timestamp >= cooldown
    assert (first.to_replicas, second.to_replicas) == (2, 3)


def labelled(project: str, service: str, labels: dict[str, str]) -> list[str]:
    compose = {
        "com.docker.compose.project": project,
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": "1",
    }
    return [arg for k, v in {**compose, **labels}.items() for arg in ("--label", f"{k}={v}")]


def start_udp_worker(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow, labels: dict[str, str]
) -> int:
    """The service `worker` of `project` with `labels`, and an `ebbflow run` reading its
    containers and a UDP listener; the listener's port. No scrape and no probes: one of
    these tests runs beside the others (scripts/test), and out of its scope an ebbflow
    still monitors, so it would scrape and probe their targets too."""
    udp_port = free_port()
    config = ebbflow.workdir / "ebbflow.yaml"
    config.write_text(
        f"inputs:\n  containers: {{}}\n  udp:\n    listen: 127.0.0.1:{udp_port}\n"
        "  scrape: false\n  probes: false\n"
    )
    run_container(
        f"{project}_worker_1", "--init", "--network", "none", *labelled(project, "worker", labels)
    )
    ebbflow.start("--config", str(config))
    return udp_port


def test_scales_on_an_app_metric_pushed_over_udp(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow
) -> None:
    """An application pushes its queue depth as line protocol; ebbflow scales its service."""
    udp_port = start_udp_worker(
        run_container,
        project,
        ebbflow,
        {
            "ebbflow.scale.metric": "queue_depth",
            "ebbflow.scale.target": "10",
            "ebbflow.scale.max_replicas": "3",
            "ebbflow.scale.window": "2",
            "ebbflow.scale.stabilization": "3",
        },
    )
    depth = {"value": 30}
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def push() -> None:  # one datagram per poll: bounded by wait_for's own deadline
        ebbflow.assert_alive()
        line = f"queue,service={project}/worker depth={depth['value']}i"
        sender.sendto(line.encode(), ("127.0.0.1", udp_port))

    try:
        # 30 waiting at 10 per replica: 3 replicas
        wait_for("3 workers", lambda: replicas(project, "worker") == 3, 60, push)
        depth["value"] = 0
        wait_for("1 worker", lambda: replicas(project, "worker") == 1, 60, push)
    finally:
        sender.close()
    assert ebbflow.stop() == 0
    made = decisions(ebbflow.state, project, "worker")
    moves = [(d.from_replicas, d.to_replicas) for d in made]
    # out to 3 at once; then only down, to 1 (the window may pass through 2 on the way)
    assert moves[0] == (1, 3) and moves[-1][1] == 1
    assert all(b < a for a, b in moves[1:]), moves
    assert "queue_depth avg 30 > target 10" in made[0].reason
    assert made[0].inputs["queue_depth_avg"] == 30


def test_scales_on_an_http_probe_latency(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    """A slow endpoint (a CGI that sleeps while a flag exists) scales the service out."""
    www, flag = tmp_path / "www", tmp_path / "flag"
    (www / "cgi-bin").mkdir(parents=True)
    flag.mkdir()
    cgi = www / "cgi-bin" / "slow"
    cgi.write_text(
        "#!/bin/sh\n[ -f /flag/slow ] && sleep 0.4\n"
        'printf "Content-Type: text/plain\\r\\n\\r\\nok\\n"\n'
    )
    cgi.chmod(0o755)
    port = free_port()
    start_httpd(run_container, f"{project}-server", www, port, "-v", f"{flag}:/flag:ro")
    (flag / "slow").touch()
    run_container(
        f"{project}_web_1",
        "--init",
        "--network",
        "host",
        *labelled(
            project,
            "web",
            {
                "aliyun.probe.url": f"http://container:{port}/cgi-bin/slow",
                "ebbflow.health.interval": "1",
                "ebbflow.scale.metric": "probe_duration_seconds",
                "ebbflow.scale.max": "0.2",
                "ebbflow.scale.min": "0.05",
                "ebbflow.scale.max_replicas": "2",
                "ebbflow.scale.cooldown": "2",
                "ebbflow.scale.window": "2",
            },
        ),
    )
    ebbflow.start()
    wait_for(
        "2 replicas while the endpoint is slow",
        lambda: replicas(project, "web") == 2,
        60,
        ebbflow.assert_alive,
    )
    (flag / "slow").unlink()
    wait_for(
        "1 replica once it is fast", lambda: replicas(project, "web") == 1, 60, ebbflow.assert_alive
    )
    assert ebbflow.stop() == 0
    made = decisions(ebbflow.state, project, "web")
    assert [(d.from_replicas, d.to_replicas) for d in made] == [(1, 2), (2, 1)]
    assert "probe_duration_seconds avg" in made[0].reason and "> max 0.2" in made[0].reason
    assert made[0].inputs["probe_duration_seconds_avg"] > 0.2
    assert made[1].inputs["probe_duration_seconds_avg"] < 0.05


def test_scales_on_a_metric_a_real_prometheus_remote_writes(
    run_container: Callable[..., str], project: str, tmp_path: Path, ebbflow: Ebbflow
) -> None:
    """Debian's Prometheus scrapes an application's queue depth and remote-writes it into
    ebbflow's receiver; a policy on that metric scales the service."""
    depth = {"value": 30}

    class Exposition(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f'queue_depth{{service="{project}/worker"}} {depth["value"]}\n'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    app = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Exposition)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    receiver = free_port()
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        f"inputs:\n  containers: {{}}\n  remote_write: {{listen: '127.0.0.1:{receiver}'}}\n"
    )
    run_container(
        f"{project}_worker_1", "--init", "--network", "none",
        *labelled(project, "worker", {
            "ebbflow.scale.metric": "queue_depth",
            "ebbflow.scale.target": "10",
            "ebbflow.scale.max_replicas": "3",
            "ebbflow.scale.window": "2",
        }),
    )  # fmt: skip
    home = tmp_path / "prometheus"
    home.mkdir()
    try:
        with start_prometheus(
            free_port(), home, [f"127.0.0.1:{app.server_address[1]}"],
            remote_write=f"http://127.0.0.1:{receiver}/api/v1/write",
        ):  # fmt: skip
            ebbflow.start("--config", str(config))
            # 30 waiting at 10 per replica: 3 replicas
            wait_for("3 workers", lambda: replicas(project, "worker") == 3, 90,
                     ebbflow.assert_alive)  # fmt: skip
            received = ebbflow.metric("ebbflow_remote_write_requests_total", outcome="ok")
            assert received is not None and received >= 1
    finally:
        app.shutdown()
    assert ebbflow.stop() == 0
    made = decisions(ebbflow.state, project, "worker")
    assert (made[0].from_replicas, made[0].to_replicas) == (1, 3), made
    assert "queue_depth avg 30 > target 10" in made[0].reason


SPIKE_EVERY = 90  # seconds between spike starts
SPIKE_FOR = 20
SPIKES = 4


@pytest.mark.beside  # 6 minutes, nearly all of it waiting: beside the other tests in CI
def test_recurring_spikes_find_their_capacity_already_in_place(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow
) -> None:
    """A spiky load pushed over UDP: a queue of 20 (2 replicas at the target of 10) that
    spikes to 60 (6 replicas) for 20 s every 90 s, on a service whose replicas take 10 s
    to start. ebbflow follows the first spikes; once they recur it keeps what they need,
    so from the third on each finds its capacity running when it starts, and it turns
    back fewer times than there are spikes (rules/rhythm.py)."""
    udp_port = start_udp_worker(
        run_container,
        project,
        ebbflow,
        {
            "ebbflow.scale.metric": "queue_depth",
            "ebbflow.scale.target": "10",
            "ebbflow.scale.max_replicas": "8",
            "ebbflow.scale.warmup": "10",  # a replica serves 10 s after its start
            "ebbflow.scale.startup": "10",
        },
    )
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    base = 40.0  # seconds of base load before the first spike: a full window and more
    starts = [base + SPIKE_EVERY * n for n in range(SPIKES)]
    at_start: list[tuple[float, int]] = []  # (when, replicas running) as each spike starts
    began = time.monotonic()
    try:
        # one datagram and one look at the replicas a second, for a bounded time
        for second in range(int(starts[-1] + SPIKE_FOR + 5)):
            ebbflow.assert_alive()
            spiking = any(s <= second < s + SPIKE_FOR for s in starts)
            if second in starts:
                at_start.append((time.time(), replicas(project, "worker")))
            line = f"queue,service={project}/worker depth={60 if spiking else 20}i"
            sender.sendto(line.encode(), ("127.0.0.1", udp_port))
            time.sleep(max(0.0, began + second + 1 - time.monotonic()))
    finally:
        sender.close()
    assert ebbflow.stop() == 0
    made = decisions(ebbflow.state, project, "worker")
    moves = [(round(d.timestamp - made[0].timestamp), d.from_replicas, d.to_replicas) for d in made]
    # from the third spike on, the 6 replicas it needs are running when it starts, and
    # were ordered a start-up (10 s) or more before: none is ordered for it
    assert all(count >= 6 for _, count in at_start[2:]), (at_start, moves)
    for when, _ in at_start[2:]:
        late = [d for d in made if when - 10 <= d.timestamp <= when + SPIKE_FOR]
        assert not [d for d in late if d.to_replicas > d.from_replicas], (when, moves)
    directions = [1 if d.to_replicas > d.from_replicas else -1 for d in made]
    reversals = sum(1 for a, b in itertools.pairwise(directions) if a != b)
    assert reversals < SPIKES, (reversals, moves)
    assert all(d.outcome == "ok" for d in made), [d.detail for d in made]
    assert "Traceback" not in ebbflow.logs()
