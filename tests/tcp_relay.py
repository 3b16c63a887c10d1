"""A byte-for-byte TCP relay, LISTEN to TARGET, for the lab: it lets the containers in the
nodes' network namespaces reach librdkafka's mock cluster, which listens on the root
namespace's loopback only and advertises that address. Run one per namespace:

    python tests/tcp_relay.py 127.0.0.1:PORT 10.213.0.1:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

CHUNK = 65536


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def relay(listen: str, target: str) -> None:
    target_host, _, target_port = target.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(target_host, int(target_port)), 5
            )
        except (OSError, TimeoutError):
            writer.close()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(pipe(reader, up_writer))
            group.create_task(pipe(up_reader, writer))

    host, _, port = listen.rpartition(":")
    server = await asyncio.start_server(handle, host, int(port))
    print(f"relaying {listen} -> {target}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(relay(sys.argv[1], sys.argv[2]))
