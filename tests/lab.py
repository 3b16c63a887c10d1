"""A cluster on one machine: three Docker engines, each in a network namespace of its own
with its own containerd, joined into one Swarm of three managers.

    .venv/bin/python -m tests.lab up      # or scripts/lab up
    .venv/bin/python -m tests.lab status
    .venv/bin/python -m tests.lab down    # everything it made goes: no namespace, bridge,
                                          # iptables rule, engine or mount is left

Hosts n1, n2, n3 are 10.213.0.11-13 on the bridge `ebbr0` (10.213.0.1 in the root
namespace); every test address is one of these, made here. What the recipe must avoid
(measured, docs/architecture.md): `ip netns exec` remounts /sys and hides the cgroup mounts
from dockerd, so processes enter a namespace with `nsenter --net`; a containerd shared by
the engines would put a host-network container in the root namespace, so each node runs its
own; Docker's FORWARD policy is DROP and bridged traffic passes iptables, so one ACCEPT rule
for the bridge is added (and removed). Processes are started and stopped by their pids.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = "ebbr0"
SUBNET = "10.213.0"
GATEWAY = f"{SUBNET}.1"
RUN = Path("/run/ebbflow-lab")  # sockets: short paths (a unix socket's is at most 107 bytes)
DATA = Path(os.environ.get("EBBFLOW_LAB_DATA", "/var/tmp/ebbflow-lab"))
NODES = ("n1", "n2", "n3")
IMAGE = os.environ.get("EBBFLOW_TEST_IMAGE", "ebbflow/busybox:latest")
FORWARD_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]


def sh(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


@dataclass(frozen=True)
class Node:
    name: str
    index: int

    @property
    def address(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    @property
    def netns(self) -> str:
        return f"/var/run/netns/{self.name}"

    @property
    def run(self) -> Path:
        return RUN / self.name

    @property
    def data(self) -> Path:
        return DATA / self.name

    @property
    def socket(self) -> Path:
        return self.run / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        return sh("docker", "-H", self.host, *args, check=check, timeout=timeout).stdout.strip()

    def inside(self, *argv: str) -> list[str]:
        """A command in the node's network namespace, with a hostname of its own."""
        return ["nsenter", f"--net={self.netns}", "unshare", "--uts", "sh", "-c",
                f'hostname {self.name} && exec "$@"', "sh", *argv]  # fmt: skip


NODE_LIST = [Node(name, i + 1) for i, name in enumerate(NODES)]


def node(name: str) -> Node:
    return next(n for n in NODE_LIST if n.name == name)


def spec_replicas(service: str, via: str = "n1") -> int:
    """A Swarm service's replica count in its spec, as the manager `via` tells."""
    spec = json.loads(node(via).docker("service", "inspect", "--format", "{{json .Spec}}",
                                       service))  # fmt: skip
    return int(spec["Mode"]["Replicated"]["Replicas"])


# -- network ---------------------------------------------------------------------------------
def network_up() -> None:
    if sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    if sh("iptables", "-C", *FORWARD_RULE, check=False).returncode != 0:
        sh("iptables", "-I", *FORWARD_RULE)
    for n in NODE_LIST:
        if not Path(n.netns).exists():
            sh("ip", "netns", "add", n.name)
            veth = f"ebbv{n.index}"
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", n.name)
            sh("ip", "link", "set", veth, "master", BRIDGE, "up")
            enter = ["nsenter", f"--net={n.netns}"]
            sh(*enter, "ip", "addr", "add", f"{n.address}/24", "dev", "eth0")
            sh(*enter, "ip", "link", "set", "eth0", "up")
            sh(*enter, "ip", "link", "set", "lo", "up")
            # no default route: a node reaches the bridge's hosts and nothing else (a
            # registry lookup fails at once instead of leaving the machine)


def network_down() -> None:
    for n in NODE_LIST:
        sh("ip", "link", "del", f"ebbv{n.index}", check=False)
        sh("ip", "netns", "del", n.name, check=False)
    while sh("iptables", "-C", *FORWARD_RULE, check=False).returncode == 0:
        sh("iptables", "-D", *FORWARD_RULE, check=False)
    sh("ip", "link", "del", BRIDGE, check=False)


# -- engines ---------------------------------------------------------------------------------
def containerd_config(n: Node) -> Path:
    config = n.data / "containerd.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{n.data / "containerd"}"\n'
        f'state = "{n.run / "containerd-state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{n.run / "containerd.sock"}"\n'
        "[ttrpc]\n"
        f'  address = "{n.run / "containerd.sock.ttrpc"}"\n'
        "[debug]\n"
        f'  address = "{n.run / "containerd-debug.sock"}"\n'
        "[metrics]\n"
        '  address = ""\n'
    )
    return config


def start(n: Node, argv: list[str], log: Path, pidfile: Path) -> int:
    # a service's tasks use the image each node has: no registry lookup before a start
    env = {**os.environ, "DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            n.inside(*argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    pidfile.write_text(str(proc.pid))
    return proc.pid


def alive(pidfile: Path) -> int | None:
    """The pid in the file while that process runs. One this process started and that has
    exited is reaped here: a zombie still answers signal 0."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def wait_until(what: str, check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise RuntimeError(f"the lab: {what} did not happen within {timeout:g}s")


def engine_up(n: Node) -> None:
    for folder in (n.run, n.data, n.data / "docker", n.data / "containerd"):
        folder.mkdir(parents=True, exist_ok=True)
    containerd = n.run / "containerd.pid"
    if alive(containerd) is None:
        start(n, ["containerd", "--config", str(containerd_config(n))],
              n.data / "containerd.log", containerd)  # fmt: skip
        wait_until(f"{n.name}'s containerd", (n.run / "containerd.sock").exists)
    dockerd = n.run / "dockerd.pid"  # dockerd's own pidfile; ours is another
    if alive(n.run / "dockerd.ours") is None:
        argv = [
            "dockerd", "--containerd", str(n.run / "containerd.sock"),
            "--data-root", str(n.data / "docker"), "--exec-root", str(n.run / "exec"),
            "-H", n.host, "--pidfile", str(dockerd), "--bridge=none", "--iptables=false",
            "--ip6tables=false", "--storage-driver=vfs",
        ]  # fmt: skip
        start(n, argv, n.data / "dockerd.log", n.run / "dockerd.ours")
    wait_until(
        f"{n.name}'s engine",
        lambda: sh("docker", "-H", n.host, "version", check=False).returncode == 0,
    )
    if n.docker("images", "-q", IMAGE, check=False) == "":  # built on the node itself
        subprocess.run([str(ROOT / "scripts" / "build-image"), IMAGE], check=True,
                       capture_output=True, timeout=300,
                       env={**os.environ, "DOCKER_HOST": n.host})  # fmt: skip


def engine_stop(n: Node) -> None:
    """SIGTERM, as a node's engine is stopped (its containers stop first); waited for."""
    pid = alive(n.run / "dockerd.ours")
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        wait_until(f"{n.name}'s engine to stop", lambda: alive(n.run / "dockerd.ours") is None,
                   timeout=90)  # fmt: skip


def engines_down() -> None:
    for n in NODE_LIST:
        for pidfile in (n.run / "dockerd.ours", n.run / "containerd.pid"):
            pid = alive(pidfile)
            if pid is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while alive(pidfile) is not None and time.monotonic() < deadline:
                time.sleep(0.3)
            if alive(pidfile) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                time.sleep(0.5)


def mounts_under(*roots: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1]
        if any(point.startswith(str(root)) for root in roots):
            found.append(point)
    return sorted(found, key=len, reverse=True)


# -- the swarm -------------------------------------------------------------------------------
def swarm_up() -> None:
    first, *others = NODE_LIST
    if first.docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "active":
        first.docker("swarm", "init", "--advertise-addr", first.address,
                     "--listen-addr", f"{first.address}:2377")  # fmt: skip
    token = first.docker("swarm", "join-token", "-q", "manager")
    for n in others:
        if n.docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "active":
            n.docker("swarm", "join", "--token", token, "--advertise-addr", n.address,
                     "--listen-addr", f"{n.address}:2377", f"{first.address}:2377")  # fmt: skip
    # A manager whose engine was just restarted takes a few heartbeats to be Reachable
    # again: 60 s was once too few on a busy 2-core CI machine (the raft was fine).
    try:
        wait_until("three Ready managers in the raft", managers_healthy, timeout=150)
    except RuntimeError:
        for n in NODE_LIST:  # what each node sees, for the failure's report
            print(n.name, n.docker("node", "ls", check=False), sep="\n")
        raise


def managers_healthy() -> bool:
    """Every node Ready and every manager in the raft (Leader or Reachable), as each node
    sees it: a manager just restarted shows Ready before the raft counts it, and losing
    another then would cost the quorum."""
    for n in NODE_LIST:
        out = n.docker("node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}", check=False)
        rows = [line.split() for line in out.splitlines()]
        if len(rows) != len(NODE_LIST) or not all(
            len(row) == 2 and row[0] == "Ready" and row[1] in ("Leader", "Reachable")
            for row in rows
        ):
            return False
    return True


# -- the commands ----------------------------------------------------------------------------
def up() -> None:
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (network namespaces, engines)")
    try:
        network_up()
        for n in NODE_LIST:
            engine_up(n)
        swarm_up()
    except BaseException:
        down()
        raise


def down() -> None:
    for n in NODE_LIST:
        if alive(n.run / "dockerd.ours") is not None:
            n.docker("swarm", "leave", "--force", check=False, timeout=30)
            n.docker("rm", "-f", *n.docker("ps", "-aq", check=False).split(), check=False)
    engines_down()
    for point in mounts_under(RUN, DATA):
        sh("umount", "-l", point, check=False)
    network_down()
    shutil.rmtree(RUN, ignore_errors=True)
    shutil.rmtree(DATA, ignore_errors=True)


def is_up() -> bool:
    return all(alive(n.run / "dockerd.ours") is not None for n in NODE_LIST)


@contextlib.contextmanager
def running() -> Iterator[list[Node]]:
    """The lab for a test module: the one up already (scripts/lab up) is used and left up;
    one brought up here is taken down after."""
    if is_up():
        yield NODE_LIST
        return
    up()
    try:
        yield NODE_LIST
    finally:
        down()


def status() -> dict[str, object]:
    report: dict[str, object] = {
        "bridge": sh("ip", "link", "show", BRIDGE, check=False).returncode == 0,
        "forward_rule": sh("iptables", "-C", *FORWARD_RULE, check=False).returncode == 0,
    }
    for n in NODE_LIST:
        running = alive(n.run / "dockerd.ours") is not None
        report[n.name] = {
            "netns": Path(n.netns).exists(),
            "engine": running,
            "swarm": n.docker("info", "--format", "{{.Swarm.LocalNodeState}}", check=False)
            if running
            else "",
        }
    report["mounts"] = mounts_under(RUN, DATA)
    return report


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "up":
        up()
        print(json.dumps(status(), indent=1))
    elif command == "down":
        down()
        print(json.dumps(status(), indent=1))
    elif command == "status":
        print(json.dumps(status(), indent=1))
    else:
        print("usage: lab up|down|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
