"""Group commit for the durable intake.

Concurrent ``POST /traces`` requests each hand their trace to ``Intake.submit``;
one writer task takes everything queued so far (up to ``max_group``), stores
it with ``TraceStore.add_many`` in ONE database transaction (in a worker
thread, so the event loop keeps accepting requests), and only then resolves
each request. A request is answered 202 only after its transaction commits;
if the commit fails every request of the group gets the error (nothing half
stored, nothing answered early).
"""

from __future__ import annotations

import asyncio
import logging

from tracer.batcher import failpoint
from insitu.trace import Trace
from tracer.store import Conflict, Stored, TraceStore

log = logging.getLogger("tracer.intake")


class Intake:
    def __init__(self, store: TraceStore, *, max_group: int = 2000):
        self.store = store
        self.max_group = max_group
        self._queue: asyncio.Queue[tuple[Trace, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="tracer-intake")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def submit(self, trace: Trace) -> Stored | Conflict:
        if self._queue is None:
            raise RuntimeError("intake not started")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((trace, fut))
        return await fut

    async def _run(self) -> None:
        if self._queue is None:
            raise RuntimeError("intake not started")
        while True:
            group = [await self._queue.get()]
            while len(group) < self.max_group:
                try:
                    group.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                results = await asyncio.to_thread(self.store.add_many, [t for t, _ in group])
            except Exception as e:  # database down: every request of the group fails (503)
                log.exception("storing %d traces failed", len(group))
                for _, fut in group:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            failpoint("after_intake_commit")
            for (_, fut), res in zip(group, results):
                if not fut.done():
                    fut.set_result(res)
