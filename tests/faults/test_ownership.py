"""One owner per service, whatever the scopes say; every way of stopping releases what an
instance holds on the engine; SIGHUP reloads instead of killing."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RUN_ID, TEST_LABEL, docker_cli, free_port
from tests.ebbflow_process import Ebbflow, state_rows, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def lease_objects(owner_pid: int | None = None) -> list[str]:
    """This run's lease and claim objects on the engine (optionally of one instance)."""
    names = []
    for label in ("ebbflow.lease", "ebbflow.claim"):
        out = docker_cli(
            "ps", "-a", "--filter", f"label={label}", "--filter", f"label={TEST_LABEL}={RUN_ID}",
            "--format",
            '{{.Names}} {{.Label "ebbflow.lease.owner"}}{{.Label "ebbflow.claim.owner"}}',
        )  # fmt: skip
        for line in out.splitlines():
            name, _, owner = line.partition(" ")
            if owner_pid is None or f":{owner_pid}:" in owner:
                names.append(name)
    return names


def test_overlapping_scopes_make_one_action_per_need_and_one_warning(
    run_container: Callable[..., str], project: str, tmp_path: Path
) -> None:
    config = tmp_path / "ebbflow.yaml"
    config.write_text("reconcile: {grace: 1, interval: 0.5}\n")
    first = Ebbflow(tmp_path / "a", tmp_path / "a" / "state.db", free_port())
    second = Ebbflow(tmp_path / "b", tmp_path / "b" / "state.db", free_port())
    for one in (first, second):
        one.workdir.mkdir()
    service = f"{project}-web"
    try:
        first.start("--config", str(config))
        second.start("--config", str(config), "--scope-label", "team=a")  # overlaps the first
        for one in (first, second):
            wait_for("leading", lambda one=one: one.metric("ebbflow_leader") == 1.0, 30)
        run_container(
            f"{service}-1", "--network", "none", "--label", f"ebbflow.service={service}",
            "--label", "aliyun.scale=3", "--label", "team=a",
        )  # fmt: skip
        members = f"label=ebbflow.service={service}"
        wait_for(
            "three replicas",
            lambda: len(docker_cli("ps", "-q", "--filter", members).split()) == 3,
            60,
        )
        time.sleep(8)  # many grace periods: nothing more comes
        assert len(docker_cli("ps", "-aq", "--filter", members).split()) == 3
        acted = [
            row
            for one in (first, second)
            for row in state_rows(
                one.state,
                f"SELECT to_replicas FROM decisions WHERE service = 'label:{service}'"
                " AND outcome = 'ok' AND origin = 'reconcile'",
            )
        ]
        assert acted == [(3,)]  # one action for the one need
        logs = first.logs() + second.logs()
        warning = f"service {service} is in the scope of two instances"
        assert logs.count(warning) == 1, logs
        assert "409" not in logs and "action failed" not in logs
        assert "action refused" not in logs
    finally:
        for one in (first, second):
            if one.proc is not None and one.proc.poll() is None:
                one.stop()


def test_sighup_reloads_a_changed_value_and_every_stop_leaves_no_lease_object(
    run_container: Callable[..., str], project: str, ebbflow: Ebbflow, tmp_path: Path
) -> None:
    config = tmp_path / "ebbflow.yaml"
    config.write_text("reconcile: {grace: 1}\n")
    service = f"{project}-app"
    run_container(f"{service}-1", "--network", "none", "--label", f"ebbflow.service={service}")
    ebbflow.start("--config", str(config))
    wait_for("leading", lambda: ebbflow.metric("ebbflow_leader") == 1.0, 30)
    assert ebbflow.metric("ebbflow_policy_valid", service=service) is None  # no policy yet
    # A policy from the config, for a service whose labels cannot change: reloaded live.
    config.write_text(
        f"reconcile: {{grace: 1}}\nrules: {{policies: [{{selector: {{service: '{service}'}}, "
        "labels: {aliyun.scale: '2'}}]}\n"
    )
    assert ebbflow.proc is not None
    ebbflow.proc.send_signal(signal.SIGHUP)
    wait_for(
        "the reloaded policy acted on",
        lambda: len(
            docker_cli("ps", "-q", "--filter", f"label=ebbflow.service={service}").split()
        ) == 2,
        30,
        ebbflow.assert_alive,
    )  # fmt: skip
    assert "SIGHUP: config reloaded: rules changed live" in ebbflow.logs()
    ebbflow.assert_alive()  # SIGHUP never stops it
    pid = ebbflow.proc.pid
    assert lease_objects(pid)  # it holds its lease (and its claim) now
    for sig in (signal.SIGQUIT, signal.SIGINT, signal.SIGTERM):
        if ebbflow.proc.poll() is None:
            ebbflow.proc.send_signal(sig)
            assert ebbflow.proc.wait(timeout=30) == 0
        assert lease_objects(pid) == [], sig
        ebbflow.start("--config", str(config))
        wait_for("leading", lambda: ebbflow.metric("ebbflow_leader") == 1.0, 30)
        pid = ebbflow.proc.pid
    ebbflow.stop()
    assert lease_objects(pid) == []
