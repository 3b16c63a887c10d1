"""Roles: one config shape, three processes. An agent runs the inputs that collect on its
node and the outputs, and nothing of the decision side; a decider runs the inputs that
receive pushed samples and the decision side; `all` runs everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebbflow.app import App, build_app
from ebbflow.config import AppConfig, ConfigError
from ebbflow.engine_certs import EngineCertificates
from ebbflow.lease import Lease
from ebbflow.lease_swarm import SwarmLease
from ebbflow.loop_watch import LoopWatch
from ebbflow.partitions import PartitionOwnership
from ebbflow.rules.engine import RuleEngine
from ebbflow.scaler.runner import ActionRunner
from ebbflow.state_watch import StateWatch
from tests.certs import make_ca, sign

INPUTS = {"containers": {}, "node": {}, "remote_write": {"listen": "127.0.0.1:0"}}


def built(tmp_path: Path, **config: object) -> App:
    return build_app(
        AppConfig.model_validate({"state": str(tmp_path / "state.db"), "inputs": INPUTS, **config})
    )


def kinds(app: App) -> set[type]:
    return {type(part) for part in app.components}


async def test_an_agent_collects_and_publishes_and_decides_nothing(tmp_path: Path) -> None:
    app = built(tmp_path, role="agent")
    try:
        assert sorted(app.inputs) == ["containers", "node"]  # the receiver is a decider's
        assert sorted(app.outputs) == ["prometheus"]
        assert not kinds(app) & {RuleEngine, ActionRunner, Lease, SwarmLease, StateWatch}
        assert app.store.memory and not (tmp_path / "state.db").exists()  # no state file
        assert app.context.health.report().as_dict()["role"] == "agent"
    finally:
        await app.close()


async def test_a_decider_receives_decides_and_acts(tmp_path: Path) -> None:
    app = built(tmp_path, role="decider", lease={"backend": "swarm"})
    try:
        assert sorted(app.inputs) == ["remote_write"]
        assert {RuleEngine, ActionRunner, SwarmLease, StateWatch} <= kinds(app)
        assert (tmp_path / "state.db").exists()
        samples = list(app.context.health.telemetry(1.0))
        assert [(s.name, s.labels) for s in samples if s.name == "ebbflow_role"] == [
            ("ebbflow_role", (("role", "decider"),))
        ]
    finally:
        await app.close()


async def test_kafka_deciders_own_what_their_consumer_group_assigns(tmp_path: Path) -> None:
    kafka = {"bootstrap_servers": "127.0.0.1:1", "topic": "t", "group_id": "g"}
    app = built(tmp_path, role="decider", lease={"backend": "kafka"},
                inputs={**INPUTS, "kafka": kafka})  # fmt: skip
    try:
        assert sorted(app.inputs) == ["kafka", "remote_write"]
        assert not kinds(app) & {Lease, SwarmLease}  # the group decides, no lease is held
        partitions = app.context.partitions
        assert isinstance(partitions, PartitionOwnership)
        assert app.inputs["kafka"].ownership is partitions
        assert (partitions.group, partitions.topic) == ("g", "t")
        runner = next(p for p in app.components if isinstance(p, ActionRunner))
        assert partitions.drains == [runner.quiet]  # a revoke waits for actions under way
    finally:
        await app.close()
    with pytest.raises(ConfigError, match=r"lease\.backend: kafka needs inputs\.kafka enabled"):
        built(tmp_path, role="decider", lease={"backend": "kafka"})
    agent = built(tmp_path, role="agent", lease={"backend": "kafka"})
    try:
        assert agent.context.partitions is None  # an agent owns nothing
    finally:
        await agent.close()


async def test_an_agent_pushes_to_two_deciders_through_two_instances_of_an_output(
    tmp_path: Path,
) -> None:
    outputs = {
        "remote_write": {"url": "http://127.0.0.1:1/api/v1/write"},
        "remote_write/standby": {"url": "http://127.0.0.1:2/api/v1/write"},
    }
    app = built(tmp_path, role="agent", outputs=outputs)
    try:
        first, second = app.outputs["remote_write"], app.outputs["remote_write/standby"]
        assert (first.name, second.name) == ("remote_write", "remote_write/standby")
        assert first.options.spool_dir != second.options.spool_dir  # a spool each
        assert second.options.spool_dir.name == "remote_write-standby"
        labels = {s.labels for s in second.telemetry(1.0) if s.name == "ebbflow_output_up"}
        assert labels == {(("output", "remote_write/standby"),)}
    finally:
        await app.close()
    with pytest.raises(ConfigError, match="only outputs take a second instance"):
        built(tmp_path, role="agent", inputs={"node/again": {}})
    with pytest.raises(ConfigError, match="alias of"):
        built(tmp_path, role="agent", outputs={"remote_write/Bad Name": {}})


async def test_all_in_one_stays_the_default(tmp_path: Path) -> None:
    app = built(tmp_path)
    try:
        assert sorted(app.inputs) == ["containers", "node", "remote_write"]
        assert {RuleEngine, ActionRunner, Lease, LoopWatch} <= kinds(app)
        assert EngineCertificates not in kinds(app)  # no docker.tls: nothing to follow
    finally:
        await app.close()


async def test_with_docker_tls_every_role_follows_the_client_certificate(tmp_path: Path) -> None:
    make_ca(tmp_path / "ca")
    folder = tmp_path / "client"
    sign(tmp_path / "ca", folder, "client", "extendedKeyUsage = clientAuth\n")
    (folder / "ca.pem").write_bytes((tmp_path / "ca" / "ca.pem").read_bytes())
    (folder / "cert.pem").write_bytes((folder / "client-cert.pem").read_bytes())
    (folder / "key.pem").write_bytes((folder / "client-key.pem").read_bytes())
    docker = {"tls": {"cert_path": str(folder)}, "nodes": {"far": "tcp://127.0.0.1:1"}}
    for role in ("all", "agent"):
        app = built(tmp_path, role=role, docker=docker)
        try:
            (certs,) = [p for p in app.components if isinstance(p, EngineCertificates)]
            assert certs.context is app.context.nodes.tls is not None
            assert app.context.nodes.handles["far"].tls is certs.context
        finally:
            await app.close()


def test_an_unknown_role_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="role"):
        AppConfig.model_validate({"role": "leader"})


async def test_a_role_with_nothing_to_do_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for role in ("agent", "decider"):
        app = build_app(
            AppConfig.model_validate(
                {"state": str(tmp_path / "state.db"), "role": role, "inputs": {"node": {}}}
            )
        )
        await app.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("role decider: no input receives samples" in w for w in warnings), warnings
    assert any("role agent: no output pushes samples" in w for w in warnings), warnings
