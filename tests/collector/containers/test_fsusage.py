"""The writable-layer walk over a fixture tree laid out like Docker's root directory."""

from __future__ import annotations

import os
from pathlib import Path

from ebbflow.collector.containers import fsusage
from ebbflow.collector.containers.fsusage import WritableLayers, disk_usage, mount_device

CID = "c0ffee" + "0" * 58


def allocated(path: Path) -> int:
    return os.lstat(path).st_blocks * 512


def test_disk_usage_counts_the_tree_once_and_no_symlink_target(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"x" * 10000)
    os.link(tmp_path / "d" / "f", tmp_path / "d" / "hard")  # one inode, counted once
    os.symlink("/etc", tmp_path / "d" / "link")  # not followed
    expected = sum(allocated(p) for p in (tmp_path, tmp_path / "d", tmp_path / "d" / "f"))
    expected += allocated(tmp_path / "d" / "link")
    assert disk_usage(tmp_path) == expected
    assert disk_usage(tmp_path / "missing") == 0


def test_layers_by_driver_walk_at_most_a_few_per_cycle(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fsusage, "WALKS_PER_CYCLE", 1)
    ids = [CID, "b" * 64]
    for number, cid in enumerate(ids):
        mounts = tmp_path / "image" / "overlay2" / "layerdb" / "mounts" / cid
        mounts.mkdir(parents=True)
        (mounts / "mount-id").write_text(f"m{number}\n")
        diff = tmp_path / "overlay2" / f"m{number}" / "diff"
        diff.mkdir(parents=True)
        (diff / "data").write_bytes(b"y" * 5000)
        (tmp_path / "containers" / cid).mkdir(parents=True)
    layers = WritableLayers(tmp_path, "overlay2")
    layers.start_cycle()
    first = layers.usage(ids[0])
    assert first is not None and first >= 5000
    assert layers.usage(ids[1]) is None  # one walk a cycle here: next cycle
    layers.start_cycle()
    assert layers.usage(ids[1]) is not None
    assert layers.usage(ids[0]) == first  # cached until FS_TTL
    assert WritableLayers(tmp_path, "zfs").usage(ids[0]) is None  # no directory for it


def test_the_device_is_the_longest_mount_above(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        f"22 1 254:0 / / rw - ext4 /dev/vda rw\n30 22 0:5 / {tmp_path} rw - tmpfs tmpfs rw\n"
    )
    assert mount_device(tmp_path / "x", info) == "tmpfs"
    assert mount_device(Path("/usr"), info) == "/dev/vda"
