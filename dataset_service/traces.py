"""How the dataset service traces: the core's one tracing path (``insitu.trace_client.Tracing``).

Access governance and the export airlock send each trace inside the database
transaction that records the step (``Tracing.send``, random id); a trace the
tracer does not accept raises ``TraceFailed`` and the step rolls back.

The dataset lifecycle (CREATE_DATASET, UPDATE_DATASET, RELEASE/PUBLISH/INVALIDATE)
goes through ``record``: the trace id is derived from ``key``, and when a
``journal`` is given the trace made at the first attempt (its id, time and
content) is stored before it is sent, and every later attempt resends exactly
that trace: the tracer stores it once, whether the earlier attempt reached it
or not. The builder journals CREATE_DATASET in the dataset's event log, so a
crash after the tracer accepted the trace is finished by the recovery.

``record`` sends nothing when ``settings.tracer_url`` is empty (lifecycle
tracing switched off, e.g. for a catalogue without a platform); governance and
the airlock refuse every traced step in that case. Errors propagate as
``TraceFailed`` (a ``TracerError``): callers fail closed.
"""
from __future__ import annotations

import uuid

from sqlalchemy import func, select

from insitu.trace import parse_trace
from insitu.trace_client import TraceFailed, Tracing, TracerError  # noqa: F401  (the service's tracing names)

from .models import DatasetEvent
from .settings import Settings

NAMESPACE = uuid.UUID("6f1c3f0e-6d8a-4c8e-9d7e-2b1f5a0c9e11")
CALLER = "dataset-service"


def enabled(settings: Settings) -> bool:
    return bool(settings.tracer_url)


def tracing(settings: Settings, caller: str = CALLER) -> Tracing:
    return Tracing(settings.tracer_url, settings.tracer_token, settings.pseudonym_key, caller)


class EventJournal:
    """Traces kept in a dataset's event log (action ``trace``), so that a resend is the same trace."""

    def __init__(self, db, dataset_id: str):
        self.db, self.dataset_id = db, dataset_id

    def get(self, trace_id: uuid.UUID) -> dict | None:
        with self.db.session() as s:
            for detail in s.scalars(select(DatasetEvent.detail).where(
                    DatasetEvent.dataset_id == self.dataset_id, DatasetEvent.action == "trace")):
                if detail and detail.get("id") == str(trace_id):
                    return detail
        return None

    def put(self, trace) -> None:
        with self.db.session() as s:
            seq = (s.scalar(select(func.max(DatasetEvent.seq)).where(DatasetEvent.dataset_id == self.dataset_id))
                   or 0) + 1
            s.add(DatasetEvent(dataset_id=self.dataset_id, seq=seq, actor=CALLER, action="trace",
                               detail=trace.canonical_dict()))


def record(settings: Settings, action: str, *, actor: str | None, dataset_id: str, root: str | None,
           details: dict | None = None, key: str, journal: EventJournal | None = None) -> dict | None:
    if not enabled(settings):
        return None
    t = tracing(settings)
    trace_id = uuid.uuid5(NAMESPACE, f"{action}:{dataset_id}:{key}")
    stored = journal.get(trace_id) if journal is not None else None
    if stored is not None:
        trace = parse_trace(stored)
    else:
        trace = t.make(action, user=actor, dataset_ids=[dataset_id], digests={dataset_id: root} if root else {},
                       details=details or {}, id=trace_id)
        if journal is not None:
            journal.put(trace)  # committed before the first attempt: every resend is this trace
    return t.deliver(trace, f"for dataset {dataset_id}")
