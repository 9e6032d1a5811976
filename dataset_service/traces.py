"""The one place through which the dataset service sends traces.

``Tracing`` (used by access governance and the export airlock) sends a trace
inside the transaction that records a step and raises ``TraceFailed`` when the
tracer does not accept it, so the step rolls back: nothing happens untraced.

The dataset lifecycle hook:

``record(settings, action, actor=..., dataset_id=..., root=..., details=..., key=...)``
sends one trace with ``tracer.client.TracerClient`` when ``settings.tracer_url``
is set, and does nothing otherwise. The trace id is derived from ``key`` so a
retried operation sends the same trace (the tracer stores it once). The user
enters the trace only as ``tracer.client.pseudonym``. Errors propagate
(``TraceRejected`` / ``TracerUnavailable``): callers fail closed.
"""
from __future__ import annotations

import uuid
from typing import Any, Iterable, Mapping

from insitu.trace_client import TracerClient, TracerError, make_trace, pseudonym
from insitu.trace import Action

from .settings import Settings

NAMESPACE = uuid.UUID("6f1c3f0e-6d8a-4c8e-9d7e-2b1f5a0c9e11")
CALLER = "dataset-service"


def enabled(settings: Settings) -> bool:
    return bool(settings.tracer_url)


def record(settings: Settings, action: str, *, actor: str | None, dataset_id: str, root: str | None,
           details: dict | None = None, key: str) -> dict | None:
    if not enabled(settings):
        return None
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


class TraceFailed(Exception):
    """The tracer did not accept a trace (down, refused, or not configured)."""


class Tracing:
    def __init__(self, base_url: str, token: str, pseudonym_key: str, caller: str = "dataset-service",
                 *, timeout: float = 5.0, retries: int = 2):
        self.base_url = base_url
        self.caller = caller
        self.key = pseudonym_key
        self.client = TracerClient(base_url, token, timeout=timeout, retries=retries) if base_url else None

    def pseudonym(self, login: str) -> str:
        return pseudonym(login, self.key)

    def send(self, action: Action, *, user: str | None, key: str, dataset_ids: Iterable[str] = (),
             digests: Mapping[str, str] | None = None, details: Mapping[str, Any] | None = None) -> str:
        """Send one trace about the record named ``key`` (e.g. ``request:12:1``).

        The trace id is random: the client's own retries resend the same trace
        (idempotent at the tracer), while a record id that a rolled-back
        transaction or another database reuses never collides with a stored
        trace.
        """
        if self.client is None:
            raise TraceFailed("no tracer is configured: traced actions are refused")
        trace_id = uuid.uuid4()
        digests = {k: v for k, v in (digests or {}).items() if v}
        try:
            trace = make_trace(action, caller=self.caller, user=self.pseudonym(user) if user else None,
                               dataset_ids=list(dataset_ids), digests=digests, details=dict(details or {}),
                               id=trace_id)
            self.client.send_sync(trace)
        except TracerError as e:
            raise TraceFailed(f"the tracer did not accept the {action.value} trace ({key}): {e}") from e
        except ValueError as e:  # schema refused before sending: a bug, but fail closed all the same
            raise TraceFailed(f"the {action.value} trace is invalid: {e}") from e
        return str(trace_id)
