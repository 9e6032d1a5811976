"""Waiting inside the hub's event loop without blocking it.

The spawners run in JupyterHub's single event loop: a ``time.sleep`` or a
``Popen.wait(timeout=…)`` there stalls every request, proxy update and other
spawn for as long as it waits. These helpers poll with ``asyncio.sleep``
instead, so the loop serves others between two looks. The local sandbox and
its gateway (``hub/sandbox.py``, ``hub/gateway_local.py``) wait with them for
sockets to appear, processes to exit and cgroups to empty.
"""

from __future__ import annotations

import asyncio
import subprocess
from typing import Callable

INTERVAL = 0.05


async def wait_until(predicate: Callable[[], object], timeout: float, interval: float = INTERVAL) -> bool:
    """Await until ``predicate()`` is true (True) or ``timeout`` seconds have passed (False).

    ``predicate`` is called at least once, also with a timeout of 0."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def wait_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    """The exit status of ``proc`` (reaped), or None when it still runs after ``timeout`` seconds."""
    await wait_until(lambda: proc.poll() is not None, timeout)
    return proc.returncode
