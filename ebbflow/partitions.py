"""Ownership by Kafka partition: the consumer group decides which decider owns a service.

Agents key every message by its service's name (`routing_name`), and the producer places a
key with Kafka's own murmur2 partitioner (librdkafka's `murmur2_random`, the Java client's
default), so a service's samples all land in one partition. A decider owns a service
exactly while the group has assigned it that partition: `partition_of` computes the same
placement here, so a service is owned even in a moment it sends no sample.

The assignment changes only through `assign` and `revoke`, which the Kafka input calls on
the event loop from the group's rebalance callbacks, and waits for: Kafka's eager
rebalance hands a partition to a new member only after every old member has returned from
its revoke, so this instance has stopped acting on those services before the next owner
starts. Each change bumps `epoch`; an action decided in an older epoch is refused (the
runner checks it), and Swarm's version index refuses an update from a stale spec.

Node-level actions (drain, activate) belong to whoever owns partition 0: one member, never
two.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from ebbflow.model import ServiceKey
from ebbflow.names import instance_name


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed message (toPositive % n)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class PartitionOwnership:
    """The consumer group's assignment as the catalog's `Ownership`."""

    def __init__(self, group: str, topic: str) -> None:
        self.group = group
        self.topic = topic
        self.partitions = 0  # the topic's partition count, 0 until the first assignment
        self.owned: frozenset[int] = frozenset()
        self.epoch_number = 0
        self.member = ""  # this member's id in the group, once it joined
        self.instance = instance_name()  # who acts, as the audit rows name it
        self.changes = 0
        # Awaited on every revoke before the rebalance may go on: the actions under way
        # finish (the app adds the runner's), so the next owner never overlaps them.
        self.drains: list[Callable[[], Awaitable[None]]] = []

    # -- what the Kafka input tells it ---------------------------------------------------
    def assign(self, owned: Iterable[int], partitions: int, member: str = "") -> None:
        self.owned = frozenset(owned)
        self.partitions = partitions
        self.member = member or self.member
        self.epoch_number += 1
        self.changes += 1

    def revoke(self) -> None:
        """Nothing is owned any more (a rebalance began, or the consumer left)."""
        if self.owned:
            self.changes += 1
        self.owned = frozenset()
        self.epoch_number += 1

    # -- Ownership -----------------------------------------------------------------------
    def partition_of(self, service: ServiceKey) -> int | None:
        if self.partitions <= 0:
            return None
        return partition_for(service.name.encode(), self.partitions)

    def acting(self) -> bool:
        return 0 in self.owned

    def owns(self, service: ServiceKey) -> bool:
        partition = self.partition_of(service)
        return partition is not None and partition in self.owned

    def owner(self, service: ServiceKey) -> str:
        partition = self.partition_of(service)
        if partition is None:
            return ""
        where = f"partition {partition} of {self.topic}, generation {self.epoch_number}"
        if partition in self.owned:
            member = f"member {self.member}, " if self.member else ""
            return f"{self.instance} ({member}{where})"
        return f"another member of group {self.group} ({where})"

    def epoch(self) -> int:
        return self.epoch_number
