"""What the governance API answers (its response models). Times are ISO 8601 with their UTC offset, as
the views write them; every model forbids keys it does not declare, so a view that grows a field without
its model answers 500 in the tests instead of silently dropping it."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VoteOut(Out):
    reviewer: str
    decision: Literal["approve", "reject"]
    reason: str
    round: int
    at: str


class RequestEventOut(Out):
    actor: str
    action: str
    detail: str
    at: str


class RoundOut(Out):
    round: int
    purpose: str
    intended_use: str
    duration_days: int
    at: str


class AccessRequestOut(Out):
    id: int
    dataset_id: str
    project: str
    requester: str
    purpose: str
    intended_use: str
    duration_days: int
    state: str
    round: int
    created_at: str
    updated_at: str
    decided_at: str | None
    votes: list[VoteOut]
    events: list[RequestEventOut]
    grant_id: int | None
    extends_grant_id: int | None
    rounds: list[RoundOut]
    approvals_required: int


class GrantOut(Out):
    id: int
    request_id: int | None
    project: str
    dataset_id: str
    valid_from: str
    valid_until: str
    granted_by: list[str]
    status: str
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str | None


class HistorySessionOut(Out):
    session_id: str
    user: str
    project: str
    profile: str
    opened_at: str
    closed_at: str | None
    grant_id: int | None


class HistoryRequestOut(Out):
    id: int
    project: str
    requester: str
    state: str
    created_at: str


class AccessHistoryOut(Out):
    dataset_id: str
    sessions: list[HistorySessionOut]
    grants: list[GrantOut]
    requests: list[HistoryRequestOut]


class UsableDatasetOut(Out):
    dataset_id: str
    name: str
    version: int
    project: str
    gid: int
    manifest_root: str
    expires_at: str


class SessionDatasetOut(Out):
    dataset_id: str
    gid: int | None
    path: str
    manifest_root: str | None
    grant_id: int | None
    name: str
    version: int | None
    expires_at: str | None


class WorkSessionOut(Out):
    session_id: str
    user: str
    project: str
    profile: str
    lake_dir: str
    lake_mount_path: str
    opened_at: str
    closed_at: str | None
    open: bool
    datasets: list[SessionDatasetOut]


class UncoveredSessionOut(Out):
    session_id: str
    user: str
    project: str
    dataset_ids: list[str]
    reason: str
    end_reason: str


class RefusalOut(Out):
    traced: bool
