"""A second real Docker engine on this machine, as a second node (docs/architecture.md,
"Facts measured"): its own data root, exec root, socket and containerd namespace, no
bridge and no iptables, so its containers run with `--network host` or `none`. Started
and stopped by its pid, so a test can stop it mid-test the way a node goes down, and start
it again."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.conftest import RUN_ID, TEST_LABEL


class SecondEngine:
    def __init__(self, root: Path, image: str, extra: tuple[str, ...] = ()) -> None:
        self.root = root
        self.image = image
        self.extra = extra  # more dockerd arguments: another listener, TLS
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it, unless it runs."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if shutil.which("dockerd") is None:
            raise RuntimeError("no dockerd: run scripts/test, which installs docker.io")
        for part in ("data", "exec"):
            (self.root / part).mkdir(parents=True, exist_ok=True)
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115  (the daemon's own log)
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "-H",
                self.host,
                "--pidfile",
                str(self.root / "dockerd.pid"),
                "--bridge=none",
                "--iptables=false",
                "--storage-driver=vfs",
                "--containerd-namespace",
                f"ebbflow-{RUN_ID}-{self.root.name}",
                "--containerd-plugins-namespace",
                f"ebbflow-{RUN_ID}-{self.root.name}-plugins",
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while self.cli("version", check=False) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the second dockerd did not come up:\n{tail}")
            time.sleep(0.3)
        if self.cli("images", "-q", self.image) in ("", None):
            saved = subprocess.run(["docker", "save", self.image], capture_output=True, timeout=120)
            subprocess.run(
                ["docker", "-H", self.host, "load"], input=saved.stdout, check=True, timeout=120
            )

    def stop(self) -> None:
        """SIGTERM, as a node's engine is stopped: it stops its containers and goes away."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def remove(self) -> None:
        """Stop it and delete its files; dockerd leaves its data root mounted on itself."""
        self.stop()
        mounted = [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(self.root))
        ]
        for point in sorted(mounted, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def cli(self, *args: str, check: bool = True) -> str | None:
        """`docker -H <this engine> ...`; None when it fails and `check` is off."""
        done = subprocess.run(
            ["docker", "-H", self.host, *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            if check:
                raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
            return None
        return done.stdout.strip()

    def test_containers(self) -> list[str]:
        """Names of this run's test containers on this engine, stopped ones included."""
        out = self.cli(
            "ps", "-a", "--format", "{{.Names}}", "--filter", f"label={TEST_LABEL}={RUN_ID}"
        )
        return sorted((out or "").split())

    def remove_test_containers(self) -> None:
        out = self.cli("ps", "-aq", "--filter", f"label={TEST_LABEL}={RUN_ID}", check=False)
        if out:
            self.cli("rm", "-f", *out.split(), check=False)
