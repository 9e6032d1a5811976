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

from insitu.trace_client import TraceFailed, Tracing as ExportTracing

__all__ = ["ExportTracing", "TraceFailed"]
