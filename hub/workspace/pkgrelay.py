"""Inside the workspace: relay 127.0.0.1:<port> to the hub's package index socket.

pip speaks TCP only; the platform's curated index (``hub/package_index.py``)
reaches the workspace as a Unix socket (``$INSITU_INDEX_SOCKET``). The relay
runs in the notebook server's event loop, as the researcher, on the loopback
of the workspace's own network namespace: it only passes bytes, the index and
its record of what was installed stay with the hub.
"""

from __future__ import annotations

import asyncio
import os


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        w.close()


async def start_relay(socket_path: str, port: int) -> asyncio.AbstractServer | None:
    if not socket_path or not os.path.exists(socket_path):
        return None

    async def handle(reader, writer):
        try:
            r2, w2 = await asyncio.open_unix_connection(socket_path)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, w2), _pipe(r2, writer))

    return await asyncio.start_server(handle, "127.0.0.1", port)
