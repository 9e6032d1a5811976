"""The single hook through which the dataset service records lifecycle traces.

``record(settings, action, actor=..., dataset_id=..., root=..., details=..., key=...)``
sends one trace with ``tracer.client.TracerClient`` when ``settings.tracer_url``
is set, and does nothing otherwise. The trace id is derived from ``key`` so a
retried operation sends the same trace (the tracer stores it once). The user
enters the trace only as ``tracer.client.pseudonym``. Errors propagate
(``TraceRejected`` / ``TracerUnavailable``): callers fail closed.
"""
from __future__ import annotations

import uuid

from .settings import Settings

NAMESPACE = uuid.UUID("6f1c3f0e-6d8a-4c8e-9d7e-2b1f5a0c9e11")
CALLER = "dataset-service"


def enabled(settings: Settings) -> bool:
    return bool(settings.tracer_url)


def record(settings: Settings, action: str, *, actor: str | None, dataset_id: str, root: str | None,
           details: dict | None = None, key: str) -> dict | None:
    if not enabled(settings):
        return None
    from tracer.client import TracerClient, make_trace, pseudonym

    trace = make_trace(
        action,
        caller=CALLER,
        user=pseudonym(actor, settings.pseudonym_key) if actor else None,
        dataset_ids=[dataset_id],
        digests={dataset_id: root} if root else {},
        details=details or {},
        id=uuid.uuid5(NAMESPACE, f"{action}:{dataset_id}:{key}"),
    )
    return TracerClient(settings.tracer_url, settings.tracer_token).send_sync(trace)
