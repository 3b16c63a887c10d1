"""cAdvisor's container_fs_usage_bytes and container_fs_limit_bytes: what a container's
writable layer and its log directory hold on the filesystem of Docker's root directory, and
that filesystem's size.

Sizes are disk usage, as `du` counts them (allocated blocks, each inode once). A walk costs
a stat per file, so each container is walked again only every FS_TTL, and at most
WALKS_PER_CYCLE containers a cycle (a host with 200 containers catches up in a few cycles
rather than stalling one); between walks the last size stands, as cAdvisor's fs handler does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FS_TTL = 60.0
# An idle container (dynamic housekeeping: its CPU unchanged since its last reads) runs no
# process that could write, so its layer keeps its size: walked again only this seldom.
FS_IDLE_TTL = 600.0
WALKS_PER_CYCLE = 10
# storage driver → the writable layer's directory below Docker's root, by mount id
LAYER_DIRS = {
    "overlay2": "overlay2/{}/diff",
    "vfs": "vfs/dir/{}",
    "aufs": "aufs/diff/{}",
    "btrfs": "btrfs/subvolumes/{}",
}


def disk_usage(path: Path) -> int:
    """Bytes allocated to `path` and below it, each inode once, symlinks not followed."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    seen: set[tuple[int, int]] = {(top.st_dev, top.st_ino)}
    total = top.st_blocks * 512
    stack = [str(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # gone meanwhile, or unreadable: what can be read counts
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def mount_device(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The device of the filesystem `path` is on (the longest mount point above it)."""
    best, device = "", ""
    target = str(path.resolve())
    for line in mountinfo.read_text().splitlines():
        fields = line.split()
        mount_point = fields[4]
        source = fields[fields.index("-") + 2] if "-" in fields else ""
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, device = mount_point, source
    return device


class WritableLayers:
    def __init__(self, docker_root: Path, driver: str) -> None:
        self.root = docker_root
        self.layout = LAYER_DIRS.get(driver)
        self.driver = driver
        self.device = mount_device(docker_root)
        self._sizes: dict[str, tuple[float, int]] = {}  # id → (walked at, bytes)
        self._walks = 0

    def limit(self) -> int:
        st = os.statvfs(self.root)
        return st.f_blocks * st.f_frsize

    def start_cycle(self) -> None:
        self._walks = 0

    def usage(self, container_id: str, idle: bool = False) -> int | None:
        """The last walked size (walking again when due and this cycle allows), or None
        while it was never walked or the driver keeps no directory for it."""
        if self.layout is None:
            return None
        cached = self._sizes.get(container_id)
        due = cached is None or time.monotonic() - cached[0] >= (FS_IDLE_TTL if idle else FS_TTL)
        if due and self._walks < WALKS_PER_CYCLE:
            self._walks += 1
            size = self._walk(container_id)
            if size is not None:
                cached = self._sizes[container_id] = (time.monotonic(), size)
        return cached[1] if cached is not None else None

    def _walk(self, container_id: str) -> int | None:
        mounts = self.root / "image" / self.driver / "layerdb" / "mounts" / container_id
        try:
            mount_id = (mounts / "mount-id").read_text().strip()
        except OSError:
            return None
        assert self.layout is not None
        layer = self.root / self.layout.format(mount_id)
        logs = self.root / "containers" / container_id
        return disk_usage(layer) + disk_usage(logs)  # cAdvisor counts the log dir as well

    def forget(self, container_id: str) -> None:
        self._sizes.pop(container_id, None)
