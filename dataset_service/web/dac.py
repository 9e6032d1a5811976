"""Committee pages beyond the queue: a page per request with its whole history, and the revoke confirmation.

| page | who |
|---|---|
| ``GET /requests/{id}`` | the committee, auditors, the requester and members of the request's project |
| ``GET /dac/grants/{id}/revoke`` | the committee: what revoking ends (the running workspaces it stops), then confirm |

The request page shows every round as submitted (purpose, intended use,
duration), the votes and reasons of each round, the committee's "ask for
changes" comments, every event in order, and a word diff between consecutive
rounds, so the committee sees in round 2 what it asked for in round 1 and what
the requester changed.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from insitu.identity import Identity

from ..governance.deps import GovernanceDep
from ..governance.models import AccessRequest, Grant, SessionDataset, WorkSession
from ..governance.service import aware
from . import views
from .history import rounds_of
from ..deps import SessionDep
from .deps import DacPage, error_page, page_login, prefix_of, render

router = APIRouter(include_in_schema=False)
RequestReader = Annotated[Identity, Depends(page_login("researchers", "dac", "auditors"))]


def can_see(who: Identity, req: AccessRequest) -> bool:
    return (who.has_role("dac", "auditors") or req.requester == who.name
            or (who.has_role("researchers") and req.project in who.projects))


@router.get("/requests/{request_id}")
def request_page(request_id: int, request: Request, who: RequestReader, s: SessionDep, gov: GovernanceDep):
    req = s.get(AccessRequest, request_id)
    if req is None or not can_see(who, req):  # the same answer for "none" and "not yours"
        return error_page(request, who, 404, "No such request", f"There is no request #{request_id} you may see.")
    names = views.dataset_names(s)
    row = views.request_row(req, gov, names)
    grant = req.grant
    extends = s.get(Grant, req.extends_grant_id) if req.extends_grant_id else None
    return render(request, who, "request.html", r=row, rounds=rounds_of(req), quorum=gov.policy.approvals_required,
                  grant=views.grant_row(grant, gov, names) if grant else None,
                  extends=views.grant_row(extends, gov, names) if extends else None)


def sessions_stopped_by(s: Session, grant: Grant) -> list[dict]:
    """Open workspace sessions that use this grant: revoking it stops them (unless another grant of the
    same project covers the dataset, which the reconciler checks again)."""
    rows = s.execute(select(WorkSession).join(SessionDataset, SessionDataset.session_id == WorkSession.id)
                     .where(SessionDataset.grant_id == grant.id, WorkSession.closed_at.is_(None))
                     .order_by(WorkSession.opened_at)).scalars().all()
    return [{"session_id": w.id, "user": w.user, "project": w.project, "profile": w.profile or "notebook",
             "opened_at": aware(w.opened_at)} for w in rows]


@router.get("/dac/grants/{grant_id}/revoke")
def revoke_confirm(grant_id: int, request: Request, who: DacPage, s: SessionDep, gov: GovernanceDep):
    g = s.get(Grant, grant_id)
    back = prefix_of(request).rstrip("/") + "/dac"
    if g is None:
        return error_page(request, who, 404, "No such grant", f"There is no grant #{grant_id}.", back)
    row = views.grant_row(g, gov, views.dataset_names(s))
    if row["status"] != "active":
        return error_page(request, who, 409, "Nothing to revoke", f"Grant #{grant_id} is {row['status']}.", back)
    others = [x for x, _ in gov.grants_in_force(s, projects=[g.project], dataset_ids=[g.dataset_id]) if x.id != g.id]
    return render(request, who, "revoke.html", g=row, sessions=sessions_stopped_by(s, g), other_grants=len(others))
