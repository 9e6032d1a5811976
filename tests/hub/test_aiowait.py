"""hub/aiowait.py: the spawners' waits leave the hub's event loop free while they wait."""

import asyncio
import subprocess
import sys

from hub.aiowait import wait_exit, wait_until


async def test_wait_exit_lets_the_loop_serve_others_while_the_process_runs():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    seen_running = []

    async def other_work():
        await asyncio.sleep(0)
        seen_running.append(proc.poll() is None)  # ran while the wait was still waiting
        proc.stdin.close()  # only now may the process end

    status, _ = await asyncio.gather(wait_exit(proc, 30), other_work())
    assert status == 0 and seen_running == [True]


async def test_wait_exit_gives_none_for_a_process_that_outlives_the_timeout():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert await wait_exit(proc, 0) is None
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        proc.wait()
    assert await wait_exit(proc, 0) == 0


async def test_wait_until():
    calls = []

    def third_time():
        calls.append(1)
        return len(calls) >= 3

    assert await wait_until(third_time, 30, interval=0) is True and len(calls) == 3
    assert await wait_until(lambda: False, 0) is False
    assert await wait_until(lambda: True, 0) is True
