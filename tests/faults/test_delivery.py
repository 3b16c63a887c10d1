"""Delivery that cannot die: a server that hangs up, a torn or corrupt spool, a full disk.

Each test counts exactly: what the server took, what was cut and what was dropped.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from ebbflow.bus import Bus
from ebbflow.exporters.buffer import Spool, frame
from ebbflow.model import Sample

from ..exporters.test_pipeline import Server, output, samples, until, values

pytestmark = pytest.mark.faults


class HangsUp(Server):
    """Reads each write, then closes the connection without an answer, `hang_ups` times."""

    def __init__(self, hang_ups: int) -> None:
        super().__init__()
        self.hang_ups = hang_ups

    async def write(self, request: web.Request) -> web.Response:
        if self.hang_ups > 0:
            self.hang_ups -= 1
            await request.read()
            assert request.transport is not None
            request.transport.close()  # the client sees ServerDisconnectedError
            return web.Response(status=204)
        return await super().write(request)


async def test_a_server_that_hangs_up_20_times_gets_every_sample_once(tmp_path: Path) -> None:
    server = HangsUp(hang_ups=20)
    await server.start()
    bus = Bus()
    out = output(bus, server.port, tmp_path)
    task = asyncio.create_task(out.run())
    try:
        bus.publish(samples(0, 100))
        await until(lambda: len(server.lines) == 100 and out.last_send_ok, timeout=30)
        assert server.hang_ups == 0 and server.requests == 10  # 10 batches, once each
        assert out.retries == 20  # each hang-up one failed send, retried
        assert not task.done()  # the output never ended
        assert sorted(values(server.lines)) == list(range(100))  # each exactly once
        assert sum(out.dropped.values()) == 0 and out.up
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def batch(first: int, count: int = 5) -> list[Sample]:
    return list(samples(first, count).samples)


def spool_of(directory: Path, *records: bytes, offset: int | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spool.log").write_bytes(b"".join(records))
    if offset is not None:
        (directory / "spool.offset").write_text(str(offset))


async def deliver_spool(directory: Path) -> tuple[list[int], int, bool]:
    """Start an output on the spool: (values the server got, records cut, output up)."""
    server = Server()
    await server.start()
    bus = Bus()
    out = output(bus, server.port, directory)
    task = asyncio.create_task(out.run())
    try:
        await until(lambda: out.spool is not None and out.spool.pending_bytes == 0)
        await asyncio.sleep(0.1)  # nothing more comes
        assert out.spool is not None
        return values(server.lines), out.spool.cut_records, out.up
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


async def test_a_torn_tail_is_cut_and_every_whole_record_delivered(tmp_path: Path) -> None:
    whole = frame(batch(0)) + frame(batch(5))
    spool_of(tmp_path, whole, frame(batch(10))[:40])  # SIGKILL in the middle of a write
    got, cut, up = await deliver_spool(tmp_path)
    assert (got, cut, up) == (list(range(10)), 1, True)


async def test_a_garbage_record_is_skipped_and_counted(tmp_path: Path) -> None:
    bad = frame(batch(5))
    corrupted = bad[:20] + b"X" + bad[21:]  # one byte flipped: the checksum says so
    spool_of(tmp_path, frame(batch(0)), corrupted, b"garbage\n", frame(batch(10)))
    got, cut, up = await deliver_spool(tmp_path)
    assert (got, cut, up) == ([*range(5), *range(10, 15)], 2, True)


async def test_an_offset_inside_a_record_resumes_at_that_record(tmp_path: Path) -> None:
    first, second, third = frame(batch(0)), frame(batch(5)), frame(batch(10))
    spool_of(tmp_path, first, second, third, offset=len(first) + 17)
    got, cut, up = await deliver_spool(tmp_path)
    # the record the offset points into may have gone already: it goes again, never lost
    assert (got, cut, up) == (list(range(5, 15)), 0, True)


async def test_an_offset_past_the_end_replays_the_whole_spool(tmp_path: Path) -> None:
    spool_of(tmp_path, frame(batch(0)), frame(batch(5)), offset=10**6)
    got, cut, up = await deliver_spool(tmp_path)
    assert (got, cut, up) == (list(range(10)), 0, True)


async def test_a_spool_of_the_previous_format_is_carried_over(tmp_path: Path) -> None:
    from ebbflow.exporters.buffer import encode

    (tmp_path / "spool.jsonl").write_text(encode(batch(0)) + "\n" + encode(batch(5)) + "\n")
    got, cut, up = await deliver_spool(tmp_path)
    assert (got, cut, up) == (list(range(10)), 0, True)
    assert not (tmp_path / "spool.jsonl").exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs of the test's own, unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (run as root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


async def test_a_full_disk_is_counted_as_spool_full_logged_once_and_delivery_goes_on(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server()
    await server.start()
    port = server.port
    await server.stop()  # down: everything goes to the spool until the disk is full
    filler = tiny_disk / "filler"
    filler.write_bytes(b"x" * 32 * 1024)  # another writer holds half the disk
    bus = Bus()
    out = output(bus, port, tiny_disk / "spool", max_buffered=100, flush_interval=0.02)
    task = asyncio.create_task(out.run())
    try:
        with caplog.at_level(logging.INFO, "ebbflow.exporters"):
            published = 0
            for _ in range(40):  # 40 × 100 samples: far more than 64 KiB of spool
                bus.publish(samples(published, 100))
                published += 100
                await asyncio.sleep(0.02)
            await until(lambda: out.dropped["spool_full"] > 0)
            assert out.spool is not None and out.spool.full is not None
            assert "No space left" in out.spool.full
            full_lines = [r for r in caplog.records if "full (No space left" in r.getMessage()]
            assert len(full_lines) == 1  # logged once, not per batch
            await asyncio.sleep(0.2)
            # Space comes back (another writer's file removed), and so does the server.
            filler.unlink()
            await server.start()
            await until(lambda: out.last_send_ok and not out.buffer, timeout=30)
            await until(lambda: out.spool is not None and out.spool.pending_bytes == 0)
            await asyncio.sleep(0.2)
            arrived = values(server.lines)
            assert len(arrived) == len(set(arrived))  # nothing twice
            # Exact accounting: each published sample either arrived or was counted dropped.
            assert len(arrived) + out.dropped["spool_full"] == published
            assert out.dropped["buffer_full"] == out.dropped["rejected"] == 0
            # Delivery goes on once the disk has room: new samples still arrive.
            bus.publish(samples(published, 10))
            await until(lambda: len(server.lines) == len(arrived) + 10)
            assert out.up
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def test_enospc_mid_write_leaves_no_torn_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path, 1 << 20)
    assert spool.append(batch(0))
    size = spool.size
    real_fsync = __import__("os").fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    assert not spool.append(batch(5))
    monkeypatch.setattr("os.fsync", real_fsync)
    assert spool.size == size and spool.full == "No space left on device"
    assert [int(s.value) for b in spool.pending() for s in b] == list(range(5))
    assert spool.append(batch(5)) and spool.full is None


async def test_a_batch_that_cannot_be_encoded_costs_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server()
    await server.start()
    bus = Bus()
    out = output(bus, server.port, tmp_path)
    real = out.send

    async def send(batch: list[Sample]) -> None:
        if any(s.value == 13 for s in batch):
            raise TypeError("unlucky sample")  # a bug in encoding, not the server
        await real(batch)

    monkeypatch.setattr(out, "send", send)
    task = asyncio.create_task(out.run())
    try:
        bus.publish(samples(0, 30))  # three batches of 10; the second holds 13
        await until(lambda: len(server.lines) == 20 and out.dropped["error"] == 10)
        assert sorted(values(server.lines)) == [*range(10), *range(20, 30)]
        assert out.last_send_ok and out.retries == 0
        assert "dropped a batch of 10 samples that cannot be sent: TypeError: unlucky sample" in (
            caplog.text
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
