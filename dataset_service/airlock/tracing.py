"""Traces of the export airlock: REQUEST_EXPORT, APPROVE_EXPORT, REJECT_EXPORT, DOWNLOAD_EXPORT.

Each trace is sent inside the database transaction that records the step; if
the tracer does not accept it the transaction rolls back and the caller gets
503 — nothing leaves, and nothing is decided, untraced. When no tracer is
configured every traced step is refused (fail closed).

What a trace carries: the pseudonym of the acting user, the dataset ids of the
workspace session the files came from, ``digests`` = {file name: SHA-256} of
the files concerned, and ``details`` with the request id, the session id (which
links to that session's USE_DATASETS trace and its manifest roots), the
project, and counts. Justifications and reasons are free text and never enter
a trace; only their SHA-256 does.
"""
from __future__ import annotations

import uuid
from typing import Any, Iterable, Mapping

from tracer.client import TracerClient, TracerError, make_trace, pseudonym
from tracer.schema import Action

TRACE_NS = uuid.UUID("0b7f1d62-8a40-4d4e-a4f1-6a1e3c2b9d70")


class TraceFailed(Exception):
    """The tracer did not accept a trace (down, refused, or not configured)."""


class ExportTracing:
    def __init__(self, base_url: str, token: str, pseudonym_key: str, caller: str = "dataset-service",
                 *, timeout: float = 5.0, retries: int = 2):
        self.caller = caller
        self.key = pseudonym_key
        self.client = TracerClient(base_url, token, timeout=timeout, retries=retries) if base_url else None

    def pseudonym(self, login: str) -> str:
        return pseudonym(login, self.key)

    def send(self, action: Action, *, user: str, key: str, dataset_ids: Iterable[str],
             digests: Mapping[str, str], details: Mapping[str, Any]) -> str:
        if self.client is None:
            raise TraceFailed("no tracer is configured: export steps are refused until one is")
        trace_id = uuid.uuid5(TRACE_NS, f"{action.value}:{key}")
        try:
            trace = make_trace(action, caller=self.caller, user=self.pseudonym(user), dataset_ids=list(dataset_ids),
                               digests=dict(digests), details=dict(details), id=trace_id)
            self.client.send_sync(trace)
        except TracerError as e:
            raise TraceFailed(f"the tracer did not accept the {action.value} trace: {e}") from e
        except ValueError as e:
            raise TraceFailed(f"the {action.value} trace is invalid: {e}") from e
        return str(trace_id)
