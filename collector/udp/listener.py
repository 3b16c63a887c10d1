"""The listening socket: a receive buffer big enough for bursts, and the kernel's count
of what it dropped when the buffer was full anyway."""

from __future__ import annotations

import os
import socket
from pathlib import Path

SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux: past rmem_max, needs root


def open_socket(address: tuple[str, int], read_buffer: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, read_buffer)
        except OSError:  # not root: as much as net.core.rmem_max allows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, read_buffer)
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class KernelDrops:
    """The `drops` column of /proc/net/udp{,6} for this socket, found by its inode."""

    def __init__(self, sock: socket.socket, proc: Path = Path("/proc/net")) -> None:
        self.inode = str(os.fstat(sock.fileno()).st_ino)
        self.tables = [proc / "udp", proc / "udp6"]
        self.last = 0

    def read(self) -> int:
        for table in self.tables:
            try:
                lines = table.read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                columns = line.split()
                if len(columns) > 12 and columns[9] == self.inode:
                    self.last = int(columns[12])
                    return self.last
        return self.last  # the socket is closed: what it had
