"""One lazily opened Docker engine connection, shared by the parts that talk to the engine,
and the translation of inspect output into the data model."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import os
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import aiodocker
import aiohttp

from ebbflow.config import ConfigError, DockerLimits, EngineTLS
from ebbflow.docker_events import BodyTooLargeError, read_bounded
from ebbflow.model import ContainerInfo
from ebbflow.services import configuration

log = logging.getLogger("ebbflow.docker")

ENGINE_SCHEMES = ("unix", "tcp", "http", "https")


def engine_address(value: str, where: str) -> str:
    """A DOCKER_HOST-style address as aiodocker takes it: a bare path is a unix socket;
    anything else without a known scheme is refused, naming where it came from."""
    if value.startswith("/"):
        return "unix://" + value
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ENGINE_SCHEMES or not rest:
        raise ConfigError(
            f"{where}={value!r} is not an engine address: use unix:///path/to/docker.sock, "
            "a socket path, or tcp://HOST:PORT"
        )
    return value


def tls_context(tls: EngineTLS) -> ssl.SSLContext:
    """The client side of an engine's `--tlsverify`, from DOCKER_CERT_PATH's three files;
    a file that does not load is a config error naming it."""
    context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH)
    try:
        context.load_verify_locations(cafile=str(tls.cert_path / "ca.pem"))
    except (ssl.SSLError, OSError) as err:
        raise ConfigError(f"docker.tls.cert_path: ca.pem does not load: {err}") from None
    try:
        context.load_cert_chain(str(tls.cert_path / "cert.pem"), str(tls.cert_path / "key.pem"))
    except (ssl.SSLError, OSError) as err:
        raise ConfigError(f"docker.tls.cert_path: cert.pem/key.pem do not load: {err}") from None
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def parse_docker_time(value: str) -> float:
    """Docker's RFC 3339 times carry nanoseconds; Python's parser takes microseconds."""
    if not value or value.startswith("0001-"):
        return 0.0
    head, _, frac = value.rstrip("Z").partition(".")
    tz = "+00:00"
    for sign in ("+", "-"):
        if sign in frac:
            frac, _, offset = frac.partition(sign)
            tz = sign + offset
    frac = (frac + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{frac}{tz}").timestamp()


EXIT_LOG_LINES = 3
EXIT_LOG_LINE_LENGTH = 200


def describe_exit(state: Mapping[str, Any], log_lines: list[str]) -> str:
    """`exited with code 1 (OOMKilled); last log lines: "a" | "b"`."""
    marks = [mark for mark in ("OOMKilled",) if state.get(mark)]
    if state.get("Error"):
        marks.append(str(state["Error"]))
    text = f"exited with code {state.get('ExitCode', '?')}"
    if marks:
        text += f" ({', '.join(marks)})"
    lines = [line.strip()[:EXIT_LOG_LINE_LENGTH] for line in log_lines if line.strip()]
    if lines:
        text += "; last log lines: " + " | ".join(json.dumps(line) for line in lines)
    return text


def bounded_labels(
    labels: Mapping[str, Any], limits: DockerLimits
) -> tuple[dict[str, str], tuple[str, ...]]:
    """A container's labels within the bounds: a label longer than `max_label_bytes`, or
    past `max_labels_bytes` in all, is left out and named (the key cut to 100 characters)."""
    kept: dict[str, str] = {}
    errors: list[str] = []
    total = 0
    for key, value in labels.items():
        text = str(value)
        size = len(key) + len(text)
        if size > limits.max_label_bytes:
            errors.append(
                f"{key[:100]}: label of {size} bytes, over the {limits.max_label_bytes}-byte "
                "bound (docker.limits.max_label_bytes): left out"
            )
            continue
        if total + size > limits.max_labels_bytes:
            errors.append(
                f"{key[:100]}: past {limits.max_labels_bytes} bytes of labels in all "
                "(docker.limits.max_labels_bytes): left out"
            )
            continue
        total += size
        kept[key] = text
    return kept, tuple(errors)


def container_info(
    inspect: Mapping[str, Any], node: str = "", limits: DockerLimits | None = None
) -> ContainerInfo:
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    state = inspect.get("State") or {}
    cores: float | None = None
    if host.get("NanoCpus"):
        cores = host["NanoCpus"] / 1e9
    elif host.get("CpuQuota", 0) > 0 and host.get("CpuPeriod", 0) > 0:
        cores = host["CpuQuota"] / host["CpuPeriod"]
    mode = host.get("NetworkMode", "")
    networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    own = tuple(
        ip
        for n in networks.values()
        if isinstance(n, dict)
        for ip in (n.get("IPAddress"), n.get("GlobalIPv6Address"))
        if ip
    )
    address = "127.0.0.1" if mode == "host" else (own[0] if own else "")
    labels, label_errors = bounded_labels(config.get("Labels") or {}, limits or DockerLimits())
    return ContainerInfo(
        id=inspect["Id"],
        name=inspect.get("Name", "").lstrip("/"),
        image=config.get("Image", ""),
        labels=MappingProxyType(labels),
        label_errors=label_errors,
        running=bool(state.get("Running")),
        pid=int(state.get("Pid") or 0),
        created=parse_docker_time(inspect.get("Created", "")),
        started_at=parse_docker_time(state.get("StartedAt", "")),
        finished_at=parse_docker_time(state.get("FinishedAt", "")),
        network_mode=mode,
        address=address,
        addresses=own if mode != "host" else (address,),
        cpu_limit_cores=cores,
        memory_limit_bytes=host.get("Memory") or None,
        restart_count=int(inspect.get("RestartCount") or 0),
        restart_policy=str((host.get("RestartPolicy") or {}).get("Name") or ""),
        node=node,
        configuration=configuration(inspect),
    )


SWARM_SERVICE_ID = "com.docker.swarm.service.id"
SERVICE_LABELS_TTL = 10.0  # seconds a Swarm service's labels are reused before re-reading


class DockerHandle:
    """Opens the aiodocker client on first use, with a total timeout on every API call.

    Calls that stream (events) or wait (stop) pass their own timeout. A Swarm task's
    container is seen with its service's labels under its own: policies are declared on
    the service (`docker service create --label`), which its containers do not carry.

    `node` names the engine among several ("" when it is the only one). The last inspect
    output of every container seen is kept while it exists, and of the last few removed:
    it is what a container is recreated from when its engine stops answering, or when it
    was removed along with every sibling it could be cloned from.
    """

    REMEMBER_REMOVED = 256

    def __init__(
        self,
        host: str | None = None,
        timeout: float = 10.0,
        node: str = "",
        limits: DockerLimits | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.limits = limits or DockerLimits()
        self.tls = tls  # for tcp:// engines (docker.tls); unix sockets need none
        if host:
            self.host = engine_address(host, f"docker.nodes.{node}" if node else "docker.host")
        elif os.environ.get("DOCKER_HOST"):
            self.host = engine_address(os.environ["DOCKER_HOST"], "DOCKER_HOST")
        else:
            self.host = "unix:///var/run/docker.sock"
        self.timeout = timeout
        self.node = node
        self.last_inspect: dict[str, dict[str, Any]] = {}
        self._removed: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._client: aiodocker.Docker | None = None
        self._service_labels: dict[str, tuple[float, dict[str, str]]] = {}

    def template(self, container_id: str) -> dict[str, Any] | None:
        """The container's last inspect output, if it was seen."""
        return self.last_inspect.get(container_id) or self._removed.get(container_id)

    def forget(self, container_id: str) -> None:
        """The container was removed: its inspect output moves to the bounded memory."""
        inspect = self.last_inspect.pop(container_id, None)
        if inspect is not None:
            self._removed[container_id] = inspect
            while len(self._removed) > self.REMEMBER_REMOVED:
                self._removed.popitem(last=False)

    @property
    def local(self) -> bool:
        """The engine runs on this machine: its containers' cgroups can be read here."""
        return self.host.startswith("unix://")

    @property
    def display(self) -> str:
        return f"node {self.node} ({self.host})" if self.node else self.host

    @property
    def client(self) -> aiodocker.Docker:
        if self._client is None:
            url, tls = self.host, None
            if self.tls is not None and not self.local:
                url, tls = "https://" + self.host.partition("://")[2], self.tls
            self._client = aiodocker.Docker(
                url=url, timeout=aiohttp.ClientTimeout(total=self.timeout), ssl_context=tls
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def get_json(self, path: str, limit: int, params: Mapping[str, Any] | None = None) -> Any:
        """A GET of the engine's API, its answer read no further than `limit` bytes
        (BodyTooLargeError past it), within the client's timeout."""
        async with self.client._query(path, "GET", params=dict(params or {})) as response:
            body = await read_bounded(response, limit, f"{self.display}: {path}")
        return json.loads(body)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        """None when the container no longer exists."""
        try:
            inspected = await self.get_json(
                f"containers/{container_id}/json", self.limits.max_inspect_bytes
            )
        except aiodocker.DockerError as err:
            if err.status == 404:
                self.forget(container_id)
                return None
            raise
        if not isinstance(inspected, dict) or "Id" not in inspected:
            raise ValueError(f"{self.display}: inspect of {container_id[:12]} is no container")
        self.last_inspect[container_id] = inspected
        info = container_info(inspected, self.node, self.limits)
        if info.network_mode == "host" and not self.local:
            # A host-network container of a remote engine listens on that engine's host.
            host = urllib.parse.urlsplit(self.host).hostname or info.address
            info = dataclasses.replace(info, address=host, addresses=(host,))
        service_id = info.labels.get(SWARM_SERVICE_ID)
        if service_id:
            merged = {**await self.service_labels(service_id), **info.labels}
            info = dataclasses.replace(info, labels=MappingProxyType(merged))
        return info

    async def exit_reason(self, container_id: str) -> str | None:
        """Why a container exited, as an operator would look it up: its exit code, whether
        the kernel killed it for memory, Docker's error, its last log lines. None when it
        is gone."""
        try:
            container = await self.client.containers.get(container_id)
            lines = await container.log(stdout=True, stderr=True, tail=EXIT_LOG_LINES)
        except aiodocker.DockerError as err:
            if err.status == 404:
                return None
            raise
        return describe_exit(container._container.get("State") or {}, lines)

    async def ping(self) -> None:
        """Raises when the engine does not answer."""
        await self.client._query_json("version")

    async def storage(self) -> tuple[str, str]:
        """(Docker's root directory, its storage driver), from `docker info`."""
        info = await self.client._query_json("info")
        return str(info.get("DockerRootDir") or ""), str(info.get("Driver") or "")

    async def service_labels(self, service_id: str) -> dict[str, str]:
        """A Swarm service's own labels; {} when it is gone."""
        cached = self._service_labels.get(service_id)
        if cached is not None and time.monotonic() - cached[0] < SERVICE_LABELS_TTL:
            return cached[1]
        try:
            spec = (await self.client.services.inspect(service_id)).get("Spec") or {}
        except aiodocker.DockerError as err:
            if err.status in (404, 503):  # 503: this engine is not a Swarm manager
                return {}
            raise
        labels, _ = bounded_labels(spec.get("Labels") or {}, self.limits)
        self._service_labels[service_id] = (time.monotonic(), labels)
        return labels

    async def _listed_ids(self, params: Mapping[str, Any]) -> list[str]:
        listed = await self.get_json("containers/json", self.limits.max_list_bytes, params)
        return [str(item["Id"]) for item in listed if isinstance(item, dict) and "Id" in item]

    async def _inspect_all(self, ids: list[str]) -> list[ContainerInfo]:
        """Each listed container inspected; one whose answer is past the bound is left out
        (logged), never the listing."""
        found = await asyncio.gather(*(self.inspect(cid) for cid in ids), return_exceptions=True)
        infos = []
        for cid, info in zip(ids, found, strict=True):
            if isinstance(info, BodyTooLargeError):
                log.warning("container %s left out: %s", cid[:12], info)
            elif isinstance(info, BaseException):
                raise info
            elif info is not None:
                infos.append(info)
        return infos

    async def running_containers(self) -> list[ContainerInfo]:
        infos = await self._inspect_all(await self._listed_ids({}))
        return [info for info in infos if info.running]

    async def exited_containers(self) -> list[ContainerInfo]:
        ids = await self._listed_ids({"all": "1", "filters": json.dumps({"status": ["exited"]})})
        return [info for info in await self._inspect_all(ids) if not info.running]
