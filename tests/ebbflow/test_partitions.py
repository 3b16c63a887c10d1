"""Ownership by Kafka partition: the placement computed here is the one librdkafka's
murmur2 partitioner (Kafka's default) gives, checked against the real client."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from confluent_kafka import Producer

from ebbflow.model import ServiceKey
from ebbflow.partitions import PartitionOwnership, murmur2, partition_for
from ebbflow.services import routing_name
from tests.kafka_mock import MockCluster


def test_murmur2_matches_kafkas_reference_values() -> None:
    # Values of org.apache.kafka.common.utils.Utils.murmur2 (UtilsTest.testMurmur2)
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


@pytest.mark.integration
def test_placement_matches_librdkafkas_murmur2_partitioner(
    kafka_bootstrap: tuple[str, MockCluster | None],
) -> None:
    bootstrap, cluster = kafka_bootstrap
    if cluster is None:
        pytest.skip("creates its topic on the mock cluster (EBBFLOW_TEST_KAFKA is set)")
    topic = f"placement-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, 7)
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    placed: dict[str, int] = {}

    def report(err: object, message: object) -> None:
        assert err is None, err
        placed[message.key().decode()] = message.partition()  # type: ignore[attr-defined]

    keys = [f"svc-{i}" for i in range(200)] + ["web", "db", "ä-ünïcode", "x" * 300]
    for key in keys:
        producer.produce(topic, b"v", key.encode(), on_delivery=report)
    assert producer.flush(10) == 0
    assert placed == {key: partition_for(key.encode(), 7) for key in keys}
    assert len(set(placed.values())) == 7  # the keys spread over every partition


def test_routing_name_agrees_for_container_and_app_samples() -> None:
    compose = {
        "name": "shop-web-1",
        "container_label_com_docker_compose_project": "shop",
        "container_label_com_docker_compose_service": "web",
    }
    assert routing_name(compose) == "web"
    assert routing_name({"service": "shop/web"}) == "web"
    assert routing_name({"service": "compose:shop/web"}) == "web"
    assert routing_name({"service": "web"}) == "web"
    swarm = {"name": "api.1.abc", "container_label_com_docker_swarm_service_name": "api"}
    assert routing_name(swarm) == "api"
    assert routing_name({"instance": "node1"}) is None


def test_owns_only_its_assigned_partitions_and_each_change_is_an_epoch() -> None:
    ownership = PartitionOwnership("deciders", "ebbflow")
    web, db = ServiceKey("compose", "web", "shop"), ServiceKey("label", "db")
    assert not ownership.owns(web) and ownership.owner(web) == ""  # before any assignment
    web_at = partition_for(b"web", 6)
    ownership.assign([web_at], 6, "member-1")
    assert ownership.owns(web) and ownership.epoch() == 1
    assert ownership.owns(ServiceKey("swarm", "web"))  # the same name, the same partition
    assert ownership.owner(web) == (
        f"{ownership.instance} (member member-1, partition {web_at} of ebbflow, generation 1)"
    )
    assert ownership.instance.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    db_at = partition_for(b"db", 6)
    assert ownership.owns(db) == (db_at == web_at)
    assert ownership.acting() == (web_at == 0)  # node actions: partition 0's owner
    ownership.revoke()
    assert not ownership.owns(web) and ownership.epoch() == 2
    assert "another member of group deciders" in ownership.owner(web)
