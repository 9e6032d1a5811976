"""What the airlock's REST API answers (its response models; the views are built in ``service.py`` and
``homes.py``). Times are written as Python's ``isoformat`` writes them (with their UTC offset), as before
there were models. Every model forbids keys it does not declare, so a view that grows a field without its
model answers 500 in the tests instead of silently dropping it; keys a view leaves out (a file's
``preview`` for non-reviewers, ``download`` for anyone but the requester of an approved request) stay out:
the routes answer with ``response_model_exclude_unset``."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

Time = Annotated[dt.datetime, PlainSerializer(lambda t: t.isoformat(), return_type=str, when_used="json")]


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExportFileOut(Out):
    file_id: int
    name: str
    sha256: str
    size: int
    kind: str
    severity: str | None
    findings: list[Any]
    preview: dict[str, Any] | None = None  # reviewers only
    decisions: list[dict[str, Any]]
    download: bool | None = None  # the requester of an approved request only


class ExportReviewOut(Out):
    reviewer: str
    decision: str
    reason: str
    at: Time
    files: list[Any]


class ExportOut(Out):
    request_id: str
    requester: str
    project: str | None
    session_id: str | None
    dataset_ids: list[str]
    justification: str
    state: str
    quorum: int
    approvals: int
    total_size: int
    replaces: str | None
    draft_id: str | None
    created_at: Time
    decided_at: Time | None
    decision_reason: str | None
    can_review: bool
    files: list[ExportFileOut]
    reviews: list[ExportReviewOut]
    high: bool


class ExportSummaryOut(Out):
    request_id: str
    requester: str
    project: str | None
    session_id: str | None
    state: str
    approvals: int
    quorum: int
    total_size: int
    draft_id: str | None
    created_at: Time
    decided_at: Time | None
    n_files: int
    severity: str | None


class ExportStateOut(Out):
    request_id: str
    draft_id: str | None
    project: str | None
    state: str
    approvals: int
    quorum: int
    decided_at: Time | None


class DraftFileOut(Out):
    name: str
    sha256: str
    size: Any  # as the draft file says


class DraftOut(Out):
    draft_id: str
    created_at: str
    session_id: str | None
    justification: str
    files: list[DraftFileOut]
    project: str
