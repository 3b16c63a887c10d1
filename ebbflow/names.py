"""Names that several parts share: the metrics one part produces and another reads, and the
label keys a container declares for one part and another part honours.

A part that produces one of these names imports it from here, and so does the part that
reads it, so a rename cannot break the link between them silently.
"""

from __future__ import annotations

import os
import socket
import uuid


def instance_name() -> str:
    """Who an instance is, in lease objects and audit rows: its host, its process, and a
    nonce (a reused pid, or two instances in one test process, still differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# -- the source of ebbflow's own telemetry batches (ebbflow/telemetry.py); the status page
# tells them from collection, which they are not: they come each second whatever collects
TELEMETRY_SOURCE = "ebbflow"

# -- metrics the containers input produces and policies scale on -------------------------
CONTAINER_CPU_PERCENT = "ebbflow_container_cpu_percent"
CONTAINER_MEMORY_PERCENT = "ebbflow_container_memory_percent"
# The share of CFS periods in which the container was throttled (its CPU limit bit).
CONTAINER_THROTTLED_PERCENT = "ebbflow_container_cpu_throttled_percent"

# -- metrics the node input produces and the node monitor judges pressure on ---------------
NODE_MEMORY_PERCENT = "ebbflow_node_memory_percent"
NODE_CPU_PERCENT = "ebbflow_node_cpu_percent"

# -- the probes input's verdict, which tells the rules a replica answers -------------------
PROBE_SUCCESS = "probe_success"

# -- probe labels: the probes input reads them; readiness waits for a probe they declare ---
PROBE_URL_LABELS = ("aliyun.probe.url", "ebbflow.health.url")
PROBE_CMD_LABELS = ("aliyun.probe.cmd", "ebbflow.health.cmd")
PROBE_LABELS = (*PROBE_URL_LABELS, *PROBE_CMD_LABELS)
PROBE_INITIAL_DELAY_LABELS = ("aliyun.probe.initial_delay_seconds", "ebbflow.health.initial_delay")
PROBE_PREFIXES = ("aliyun.probe.", "ebbflow.health.")

# -- who pushed a batch: an agent's outputs send it, the receiving inputs show its age ------
# (an HTTP header for remote write, a message header for Kafka)
SENDER_HEADER = "X-Ebbflow-Sender"
