"""Governance traces, sent through ``tracer.client`` before an action is committed.

Every governance step (REQUEST_ACCESS, GRANT_ACCESS, REJECT_ACCESS,
REVOKE_ACCESS, USE_DATASETS, END_SESSION) is sent inside the database
transaction that records it; if the tracer does not accept it the transaction
rolls back and the caller gets 503: nothing happens untraced. Users enter a
trace only as pseudonyms; free text (purposes, reasons) never does.
"""
from __future__ import annotations

import uuid
from typing import Any, Iterable, Mapping

from tracer.client import TracerClient, TracerError, make_trace, pseudonym
from tracer.schema import Action


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
