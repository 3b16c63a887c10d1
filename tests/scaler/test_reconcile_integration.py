"""A real `ebbflow run` keeps a plain-engine service at its declared count: a service
started short is brought up to `aliyun.scale`, a replica that dies and that nothing
restarts is replaced, and a dry run only says so."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import docker_cli, running_commands
from tests.ebbflow_process import Ebbflow, state_rows
from tests.receiver import until

pytestmark = pytest.mark.integration

DECISIONS = "SELECT from_replicas, to_replicas, origin, dry_run, outcome FROM decisions"


def running(service: str) -> list[str]:
    out = docker_cli("ps", "--format", "{{.Names}}", "--filter", f"label=ebbflow.service={service}")
    return sorted(out.split())


def every(service: str) -> list[str]:
    out = docker_cli(
        "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=ebbflow.service={service}"
    )
    return sorted(out.split())


def start_ebbflow(ebbflow: Ebbflow, tmp_path: Path, *extra: str) -> None:
    config = tmp_path / "ebbflow.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "inputs": {"containers": {}},
                "outputs": {"prometheus": {}},
                "reconcile": {"interval": 0.5, "grace": 2},
            }
        )
    )
    ebbflow.start("--config", str(config), *extra)


def run_replica(run_container: Callable[..., str], service: str, name: str, *labels: str) -> str:
    """A replica of a service whose `aliyun.scale` asks for three."""
    run_container(
        name,
        "--network",
        "none",
        "--stop-signal",
        "SIGKILL",
        *[
            arg
            for label in (f"ebbflow.service={service}", "aliyun.scale=3", *labels)
            for arg in ("--label", label)
        ],
    )
    return name


def run_one(run_container: Callable[..., str], service: str) -> str:
    """The service's first replica, with healing off: only the desired count brings it back
    when it dies."""
    return run_replica(run_container, service, f"{service}-1", "ebbflow.heal.action=none")


async def test_a_service_is_brought_up_to_its_declared_count_and_a_dead_replica_replaced(
    run_container: Callable[..., str], ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    service = f"{project}-fixed"
    first = run_one(run_container, service)
    start_ebbflow(ebbflow, tmp_path)
    await until(lambda: len(running(service)) == 3, 30)
    await until(lambda: state_rows(ebbflow.state, DECISIONS) == [(1, 3, "reconcile", 0, "ok")])
    await until(lambda: ebbflow.metric("ebbflow_service_replicas_desired", service=service) == 3)

    docker_cli("kill", first)  # healing is off and Docker has no restart policy for it
    await until(lambda: len(running(service)) == 3 and first not in running(service), 30)
    assert first in every(service)  # the dead one is left for inspection, as Swarm keeps tasks
    assert len(every(service)) == 4
    await until(lambda: state_rows(ebbflow.state, DECISIONS)[1:] == [(2, 3, "reconcile", 0, "ok")])
    # A reconcile starts no cooldown: nothing in the policy's history.
    assert state_rows(ebbflow.state, "SELECT 1 FROM decisions WHERE origin = 'policy'") == []
    ebbflow.assert_alive()


async def test_a_dry_run_records_what_it_would_do_and_changes_nothing(
    run_container: Callable[..., str], ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    service = f"{project}-dry"
    first = run_one(run_container, service)
    before = docker_cli("inspect", first)
    start_ebbflow(ebbflow, tmp_path, "--dry-run")
    await until(lambda: state_rows(ebbflow.state, DECISIONS) != [], 30)
    await until(lambda: state_rows(ebbflow.state, DECISIONS)[0][4] is not None, 10)
    assert state_rows(ebbflow.state, DECISIONS) == [(1, 3, "reconcile", 1, "ok")]
    assert every(service) == [first]
    assert docker_cli("inspect", first) == before
    ebbflow.assert_alive()


async def test_a_surplus_over_the_declared_count_is_removed_newest_first(
    run_container: Callable[..., str], ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    service = f"{project}-over"
    names = [f"{service}-{n}" for n in range(1, 5)]
    for name in names:  # four, one after the other: the last is the newest
        run_replica(run_container, service, name)
    start_ebbflow(ebbflow, tmp_path)
    await until(lambda: every(service) == names[:3], 30)
    assert running(service) == names[:3]
    await until(lambda: state_rows(ebbflow.state, DECISIONS) == [(4, 3, "reconcile", 0, "ok")])


async def test_a_redeploy_by_hand_rolls_ebbflow_s_copies_one_at_a_time(
    run_container: Callable[..., str], ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    """The operator starts the new version and removes the old: the service's definition
    passes to the new one, and ebbflow's two copies of the old are replaced by copies of
    the new, each started before the old one is removed."""
    service = f"{project}-roll"
    run_replica(run_container, service, f"{service}-1")
    start_ebbflow(ebbflow, tmp_path)
    await until(lambda: len(running(service)) == 3, 30)
    copies = set(docker_cli("ps", "-q", "--filter", f"label=ebbflow.service={service}").split())
    copies -= {docker_cli("ps", "-q", "--filter", f"name=^{service}-1$")}
    assert len(copies) == 2
    run_container(
        f"{service}-v2", "--network", "none", "--stop-signal", "SIGKILL",
        "--label", f"ebbflow.service={service}", "--label", "aliyun.scale=3",
        cmd=("sleep", "601"),
    )  # fmt: skip
    docker_cli("rm", "-f", f"{service}-1")
    counts: list[int] = []

    def rolled() -> bool:
        now = running_commands(f"label=ebbflow.service={service}")
        counts.append(len(now))
        return len(now) == 3 and set(now.values()) == {"sleep 601"}

    await until(rolled, 40)
    assert min(counts) >= 3, counts  # start before stop: never short
    now = set(docker_cli("ps", "-q", "--filter", f"label=ebbflow.service={service}").split())
    assert not copies & now  # both old copies replaced
    rolls = [
        (1, 3, "reconcile", 0, "ok"),
        (3, 3, "rollover", 0, "ok"),
        (3, 3, "rollover", 0, "ok"),
    ]
    await until(lambda: state_rows(ebbflow.state, DECISIONS) == rolls, 10)
    logs = ebbflow.logs()
    assert "redeployed (configuration" in logs and "manual scale-in" not in logs
    ebbflow.assert_alive()


async def test_a_replica_that_exits_at_once_is_a_failed_action_with_its_exit_reason(
    run_container: Callable[..., str], ebbflow: Ebbflow, project: str, tmp_path: Path
) -> None:
    """Only one replica can hold the shared lock (a port, in real life): the copy ebbflow
    adds exits at once. The scale-out is recorded failed with why; healing's step records
    the same exit reason; `ebbflow explain` shows both."""
    service = f"{project}-bind"
    shared = tmp_path / "shared"
    shared.mkdir()
    run_container(
        f"{service}-1", "--network", "none", "--stop-signal", "SIGKILL",
        "-v", f"{shared}:/shared",
        "--label", f"ebbflow.service={service}", "--label", "aliyun.scale=2",
        "--label", "ebbflow.heal.backoff=1",
        cmd=(
            "sh", "-c",
            "mkdir /shared/lock 2>/dev/null"
            ' || { echo "bind: Address already in use" >&2; exit 1; }; sleep 600',
        ),
    )  # fmt: skip
    start_ebbflow(ebbflow, tmp_path)
    await until(lambda: len(state_rows(ebbflow.state, DECISIONS)) >= 1, 30)
    query = "SELECT from_replicas, to_replicas, origin, outcome, detail FROM decisions"
    await until(lambda: state_rows(ebbflow.state, query)[0][3] is not None, 15)
    first = state_rows(ebbflow.state, query)[0]
    why = 'exited with code 1; last log lines: "bind: Address already in use"'
    assert first[:4] == (1, 2, "reconcile", "failed"), first
    assert f"{service}_2 exited at once: {why}" in str(first[4]), first
    steps = "SELECT container, action, reason FROM healing"
    await until(lambda: state_rows(ebbflow.state, steps) != [], 20)
    healed = state_rows(ebbflow.state, steps)
    assert {(action, reason) for _, action, reason in healed} == {("restart", why)}, healed
    explained = subprocess.run(
        [sys.executable, "-m", "ebbflow", "explain", service, "--state", str(ebbflow.state)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert f"exited at once: {why}" in explained and f"why:     {why}" in explained, explained
    ebbflow.assert_alive()
