"""librdkafka's wire-level mock cluster, through ctypes: a real Kafka peer for tests where
no broker can be installed. Uses the librdkafka bundled in confluent-kafka's wheel."""

from __future__ import annotations

import ctypes
import glob
import os
from types import TracebackType


def _library() -> ctypes.CDLL:
    import confluent_kafka

    package = os.path.dirname(confluent_kafka.__file__)
    found = glob.glob(os.path.join(package, os.pardir, "confluent_kafka.libs", "librdkafka*.so*"))
    if not found:
        raise RuntimeError(f"no librdkafka beside {package}")
    lib = ctypes.CDLL(found[0])
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_set.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_topic_create.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.rd_kafka_mock_broker_set_down.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_up.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    return lib


class MockCluster:
    """One mock broker (id 1) on a loopback port, for the life of the `with` block."""

    def __init__(self) -> None:
        self.lib = _library()
        errors = ctypes.create_string_buffer(512)
        conf = self.lib.rd_kafka_conf_new()
        self.lib.rd_kafka_conf_set(conf, b"log_level", b"0", errors, 512)  # quiet
        self.handle = self.lib.rd_kafka_new(0, conf, errors, 512)  # 0: a producer handle
        if not self.handle:
            raise RuntimeError(errors.value.decode())
        self.cluster = self.lib.rd_kafka_mock_cluster_new(self.handle, 1)
        self.bootstrap = self.lib.rd_kafka_mock_cluster_bootstraps(self.cluster).decode()
        if not self.bootstrap.startswith("127.0.0.1:"):
            raise RuntimeError(f"mock cluster not on loopback: {self.bootstrap}")

    def create_topic(self, name: str, partitions: int) -> None:
        if self.lib.rd_kafka_mock_topic_create(self.cluster, name.encode(), partitions, 1):
            raise RuntimeError(f"could not create topic {name}")

    def broker_down(self) -> None:
        self.lib.rd_kafka_mock_broker_set_down(self.cluster, 1)

    def broker_up(self) -> None:
        self.lib.rd_kafka_mock_broker_set_up(self.cluster, 1)

    def close(self) -> None:
        self.lib.rd_kafka_mock_cluster_destroy(self.cluster)
        self.lib.rd_kafka_destroy(self.handle)

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
