"""Governance traces, sent through the core's ``insitu.trace_client.Tracing`` before an action is committed.

Every governance step (REQUEST_ACCESS, GRANT_ACCESS, REJECT_ACCESS,
REVOKE_ACCESS, USE_DATASETS, END_SESSION) is sent inside the database
transaction that records it; if the tracer does not accept it the transaction
rolls back and the caller gets 503: nothing happens untraced. Users enter a
trace only as pseudonyms; free text (purposes, reasons) never does.
"""
from __future__ import annotations

from insitu.trace_client import TraceFailed, Tracing

__all__ = ["TraceFailed", "Tracing"]
