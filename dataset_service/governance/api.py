"""REST API of access governance: requests, votes, grants, access history, and
the hub-facing session endpoints of docs/CONTRACTS.md §3.

Who may call what (admins pass every role check, never a service check):

| endpoint | callers |
|---|---|
| POST /api/access-requests | researchers (for one of their projects) |
| GET /api/access-requests[/{id}] | dac, auditors: all; researchers: their own and their projects' |
| POST /api/access-requests/{id}/votes, /changes | dac (not on their own projects' requests) |
| POST /api/access-requests/{id}/resubmit, /withdraw | the requester |
| GET /api/grants | dac, auditors, data-managers: all; researchers: their projects' |
| POST /api/grants/{id}/revoke | dac |
| GET /api/datasets/{id}/access-history | dac, data-managers, auditors |
| GET /api/users/{name}/usable-datasets | service insitu-hub, or the user themself |
| POST /api/sessions, DELETE /api/sessions/{id}, GET /api/sessions/uncovered | service insitu-hub |
| GET /api/sessions/{id} | service insitu-hub, the session's user, auditors |

Every route takes its database session with ``scope="function"``: the
transaction commits (or rolls back) *before* the answer is sent, so a 201
means the session is recorded, and a failed commit is a 5xx, never a 2xx.
"""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from insitu.identity import CurrentIdentity, Identity, require_roles
from insitu.names import Role

from insitu.httpapi import RowId, unprocessable

from ..deps import SessionDep
from ..models import Dataset
from .deps import GOVERNANCE_ERRORS, GovernanceDep, GovernanceSettingsDep, to_http
from .models import AccessRequest, Grant, SessionDataset, WorkSession
from .rules import RequestState
from .schemas import (AccessHistoryOut, AccessRequestOut, GrantOut, RefusalOut, UncoveredSessionOut,
                      UsableDatasetOut, WorkSessionOut)
from .service import Governance, aware

router = APIRouter(prefix="/api", tags=["access governance"])

DAC = (Role.DAC.value,)
RESEARCHERS = (Role.RESEARCHERS.value,)
# a required text: at least 3 characters once surrounding spaces are stripped (rules.check_text)
Text3 = Annotated[str, Field(min_length=3, max_length=4000, pattern=r"\S[\s\S]+\S",
                             description="at least 3 characters besides surrounding spaces")]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestIn(Body):
    dataset_id: Id
    project: str = Field(min_length=1, max_length=128)
    purpose: Text3
    intended_use: str = Field("", max_length=4000)
    duration_days: int = Field(ge=1, le=36500)
    extends_grant_id: int | None = Field(None, ge=1, le=2**31 - 1,
                                         description="ask for more time on this grant of the project")


class ResubmitIn(Body):
    purpose: Text3
    intended_use: str = Field("", max_length=4000)
    duration_days: int = Field(ge=1, le=36500)


class VoteIn(Body):
    decision: Literal["approve", "reject"]
    reason: str = Field("", max_length=4000, description="required when rejecting: at least 3 characters")


class ReasonIn(Body):
    reason: Text3


class SessionIn(Body):
    user: str = Field(min_length=1, max_length=255)
    project: str = Field(min_length=1, max_length=128)
    dataset_ids: list[Id] = Field(min_length=1, max_length=256)
    profile: str = Field("", max_length=64)


def _run(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except GOVERNANCE_ERRORS as e:
        err = to_http(e)
        if err.status_code == 422 and isinstance(err.detail, str):
            raise unprocessable(err.detail) from None
        raise err


def request_view(req: AccessRequest, gov: Governance) -> dict:
    return {
        "id": req.id, "dataset_id": req.dataset_id, "project": req.project, "requester": req.requester,
        "purpose": req.purpose, "intended_use": req.intended_use, "duration_days": req.duration_days,
        "state": req.state.value, "round": req.round,
        "created_at": aware(req.created_at).isoformat(), "updated_at": aware(req.updated_at).isoformat(),
        "decided_at": aware(req.decided_at).isoformat() if req.decided_at else None,
        "votes": [{"reviewer": v.reviewer, "decision": v.decision.value, "reason": v.reason, "round": v.round,
                   "at": aware(v.at).isoformat()} for v in req.votes],
        "events": [{"actor": e.actor, "action": e.action, "detail": e.detail, "at": aware(e.at).isoformat()}
                   for e in req.events],
        "grant_id": req.grant.id if req.grant else None,
        "extends_grant_id": req.extends_grant_id,
        "rounds": [{"round": r.round, "purpose": r.purpose, "intended_use": r.intended_use,
                    "duration_days": r.duration_days, "at": aware(r.at).isoformat()} for r in req.rounds],
        "approvals_required": gov.policy.approvals_required,
    }


def grant_view(g: Grant, gov: Governance) -> dict:
    return {
        "id": g.id, "request_id": g.request_id, "project": g.project, "dataset_id": g.dataset_id,
        "valid_from": aware(g.valid_from).isoformat(), "valid_until": aware(g.valid_until).isoformat(),
        "granted_by": list(g.granted_by or []), "status": gov.grant_status(g),
        "revoked_at": aware(g.revoked_at).isoformat() if g.revoked_at else None,
        "revoked_by": g.revoked_by, "revoke_reason": g.revoke_reason,
    }


def can_see_request(who: Identity, req: AccessRequest) -> bool:
    return (who.has_role("dac", "auditors") or req.requester == who.name
            or (who.has_role("researchers") and req.project in who.projects))


# --- requests ----------------------------------------------------------------
@router.post("/access-requests", status_code=201, response_model=AccessRequestOut)
def create_request(body: RequestIn, s: SessionDep, gov: GovernanceDep,
                   who: Identity = Depends(require_roles(*RESEARCHERS))):
    req = _run(gov.submit, s, requester=who.name, requester_projects=who.projects, dataset_id=body.dataset_id,
               project=body.project, purpose=body.purpose, intended_use=body.intended_use,
               duration_days=body.duration_days, extends_grant_id=body.extends_grant_id)
    return request_view(req, gov)


@router.get("/access-requests", response_model=list[AccessRequestOut])
def list_requests(s: SessionDep, gov: GovernanceDep,
                  who: Identity = Depends(require_roles("researchers", "dac", "auditors")),
                  state: RequestState | None = None, dataset_id: str | None = None, project: str | None = None,
                  mine: bool = False, limit: int = Query(200, ge=1, le=1000)):
    q = select(AccessRequest).order_by(AccessRequest.id.desc()).limit(limit)
    if state:
        q = q.where(AccessRequest.state == state)
    if dataset_id:
        q = q.where(AccessRequest.dataset_id == dataset_id)
    if project:
        q = q.where(AccessRequest.project == project)
    if mine or not who.has_role("dac", "auditors"):
        if mine:
            q = q.where(AccessRequest.requester == who.name)
        else:
            q = q.where((AccessRequest.requester == who.name) | AccessRequest.project.in_(sorted(who.projects)))
    _run(gov.expire_stale_requests, s)
    return [request_view(r, gov) for r in s.scalars(q)]


@router.get("/access-requests/{request_id}", response_model=AccessRequestOut)
def get_request(request_id: RowId, who: CurrentIdentity, s: SessionDep, gov: GovernanceDep):
    req = s.get(AccessRequest, request_id)
    if req is None:
        raise HTTPException(404, "no such access request")
    if not can_see_request(who, req):
        raise HTTPException(403, "not your request")
    return request_view(req, gov)


@router.post("/access-requests/{request_id}/votes", response_model=AccessRequestOut)
def vote(request_id: RowId, body: VoteIn, s: SessionDep, gov: GovernanceDep,
         who: Identity = Depends(require_roles(*DAC))):
    req = _run(gov.vote, s, request_id, reviewer=who.name, reviewer_projects=who.projects, decision=body.decision,
               reason=body.reason)
    return request_view(req, gov)


@router.post("/access-requests/{request_id}/changes", response_model=AccessRequestOut)
def ask_for_changes(request_id: RowId, body: ReasonIn, s: SessionDep, gov: GovernanceDep,
                    who: Identity = Depends(require_roles(*DAC))):
    req = _run(gov.request_changes, s, request_id, reviewer=who.name, reviewer_projects=who.projects,
               reason=body.reason)
    return request_view(req, gov)


@router.post("/access-requests/{request_id}/resubmit", response_model=AccessRequestOut)
def resubmit(request_id: RowId, body: ResubmitIn, s: SessionDep, gov: GovernanceDep,
             who: Identity = Depends(require_roles(*RESEARCHERS))):
    req = _run(gov.resubmit, s, request_id, actor=who.name, purpose=body.purpose, intended_use=body.intended_use,
               duration_days=body.duration_days)
    return request_view(req, gov)


@router.post("/access-requests/{request_id}/withdraw", response_model=AccessRequestOut)
def withdraw(request_id: RowId, s: SessionDep, gov: GovernanceDep,
             who: Identity = Depends(require_roles(*RESEARCHERS))):
    req = _run(gov.withdraw, s, request_id, actor=who.name)
    return request_view(req, gov)


# --- grants ------------------------------------------------------------------
@router.get("/grants", response_model=list[GrantOut])
def list_grants(s: SessionDep, gov: GovernanceDep,
                who: Identity = Depends(require_roles("researchers", "dac", "auditors", "data-managers")),
                project: str | None = None, dataset_id: str | None = None, active: bool = False):
    q = select(Grant).order_by(Grant.id.desc())
    if project:
        q = q.where(Grant.project == project)
    if dataset_id:
        q = q.where(Grant.dataset_id == dataset_id)
    if not who.has_role("dac", "auditors", "data-managers"):
        q = q.where(Grant.project.in_(sorted(who.projects)))
    out = [grant_view(g, gov) for g in s.scalars(q)]
    return [g for g in out if g["status"] == "active"] if active else out


@router.post("/grants/{grant_id}/revoke", response_model=GrantOut)
def revoke(grant_id: RowId, body: ReasonIn, s: SessionDep, gov: GovernanceDep,
           who: Identity = Depends(require_roles(*DAC))):
    g = _run(gov.revoke, s, grant_id, actor=who.name, reason=body.reason)
    return grant_view(g, gov)


@router.get("/datasets/{dataset_id}/access-history", response_model=AccessHistoryOut)
def access_history(dataset_id: str, s: SessionDep, gov: GovernanceDep,
                   who: Identity = Depends(require_roles("dac", "data-managers", "auditors"))):
    if s.get(Dataset, dataset_id) is None:
        raise HTTPException(404, "no such dataset")
    return history(s, gov, dataset_id)


def history(s: Session, gov: Governance, dataset_id: str) -> dict:
    sessions = s.execute(
        select(WorkSession, SessionDataset).join(SessionDataset, SessionDataset.session_id == WorkSession.id)
        .where(SessionDataset.dataset_id == dataset_id).order_by(WorkSession.opened_at.desc())).all()
    return {
        "dataset_id": dataset_id,
        "sessions": [{"session_id": ws.id, "user": ws.user, "project": ws.project, "profile": ws.profile,
                      "opened_at": aware(ws.opened_at).isoformat(),
                      "closed_at": aware(ws.closed_at).isoformat() if ws.closed_at else None,
                      "grant_id": sd.grant_id} for ws, sd in sessions],
        "grants": [grant_view(g, gov) for g in
                   s.scalars(select(Grant).where(Grant.dataset_id == dataset_id).order_by(Grant.id.desc()))],
        "requests": [{"id": r.id, "project": r.project, "requester": r.requester, "state": r.state.value,
                      "created_at": aware(r.created_at).isoformat()} for r in
                     s.scalars(select(AccessRequest).where(AccessRequest.dataset_id == dataset_id)
                               .order_by(AccessRequest.id.desc()))],
    }


# --- the hub-facing API (docs/CONTRACTS.md §3) --------------------------------
def _hub_service(gs: GovernanceSettingsDep, who: CurrentIdentity) -> Identity:
    if not (who.is_service and who.name == gs.hub_service_name):
        raise HTTPException(403, f"only the platform service {gs.hub_service_name} may call this")
    return who


@router.get("/users/{name}/usable-datasets", response_model=list[UsableDatasetOut])
def usable_datasets(name: str, who: CurrentIdentity, s: SessionDep, gov: GovernanceDep, gs: GovernanceSettingsDep):
    if not ((who.is_service and who.name == gs.hub_service_name) or (not who.is_service and who.name == name)):
        raise HTTPException(403, "only the hub or the user themself may list a user's usable datasets")
    return _run(gov.usable_datasets, s, name)


@router.post("/sessions", status_code=201, response_model=WorkSessionOut)
def open_session(body: SessionIn, s: SessionDep, gov: GovernanceDep, who: Identity = Depends(_hub_service)):
    ws = _run(gov.open_session, s, user=body.user, project=body.project, dataset_ids=list(body.dataset_ids),
              profile=body.profile, opened_by=who.name)
    return gov.session_view(ws, s)


class RefusalIn(Body):
    kind: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9-]*$")
    channel: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9-]*$")
    path_digest: str = Field(pattern=r"^[0-9a-f]{64}$")


@router.post("/sessions/{session_id}/refusals", status_code=201, response_model=RefusalOut)
def record_refusal(session_id: str, body: RefusalIn, s: SessionDep, gov: GovernanceDep,
                   who: Identity = Depends(_hub_service)):
    """A workspace gateway (on the hub's behalf) refused to hand out a file: traced as REFUSE_DOWNLOAD."""
    _run(gov.record_refusal, s, session_id, kind=body.kind, channel=body.channel, path_digest=body.path_digest)
    return {"traced": True}


@router.get("/sessions/uncovered", response_model=list[UncoveredSessionOut])
def uncovered(s: SessionDep, gov: GovernanceDep, who: Identity = Depends(_hub_service)):
    return gov.uncovered_sessions(s)


@router.get("/sessions/{session_id}", response_model=WorkSessionOut)
def get_work_session(session_id: str, who: CurrentIdentity, s: SessionDep, gov: GovernanceDep,
                     gs: GovernanceSettingsDep):
    ws = s.get(WorkSession, session_id)
    if ws is None:
        raise HTTPException(404, "no such session")
    allowed = ((who.is_service and who.name in (gs.hub_service_name, gs.admission_service_name))
               or (not who.is_service and who.name == ws.user) or who.has_role("auditors"))
    if not allowed:
        raise HTTPException(403, "not your session")
    return gov.session_view(ws, s)


@router.delete("/sessions/{session_id}", status_code=204)
def close_session(session_id: str, s: SessionDep, gov: GovernanceDep, who: Identity = Depends(_hub_service),
                  reason: str = Query("stopped", max_length=16, description="why it ended: stopped, revoked, "
                                      "invalidated, expired, crashed, failed_start (traced as START_FAILED)")):
    _run(gov.close_session, s, session_id, actor=who.name, reason=reason)
    return Response(status_code=204)
