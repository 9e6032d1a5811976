"""Server-rendered pages of the dataset service (Jinja2, no JavaScript).

Every page needs a hub login (the browser is sent to ``{prefix}/login``, the
hub's OAuth); every form is a POST carrying a CSRF token bound to the login
(``csrf.py``) and answers with a redirect (post/redirect/get) or, when a rule
refuses it, an error page with the 4xx status and the reason.

| page | who |
|---|---|
| ``/`` catalogue, ``/datasets/{id}`` | researchers, data-managers, dac, auditors |
| ``/my/requests``, ``/my/grants`` and their forms | researchers |
| ``/dac`` and its forms | dac |
| ``/manage`` and its forms | data-managers |
(admins pass every role check.)
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from insitu.identity import Identity
from insitu.trace_client import TraceFailed

from ..deps import DatabaseDep, SessionDep, SettingsDep
from ..governance.deps import GOVERNANCE_ERRORS, GovernanceDep
from ..governance.rules import RuleViolation
from ..governance.service import Governance
from ..governance.api import history
from ..models import Dataset, DatasetState
from ..operations import Conflict, NotFound, transition
from ..publication.service import PublisherDep, current_doi
from . import views
from .deps import (DacForm, DacPage, ManagerForm, ManagerPage, ReaderPage, ResearcherForm, ResearcherPage,
                   done, error_page, prefix_of, refused, render)

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"

router = APIRouter(include_in_schema=False)


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RuleViolation(f"{name} must be a whole number", 422)


# --- static -------------------------------------------------------------------
@router.get("/static/{name}")
def static(name: str):
    allowed = {p.name: p for p in STATIC.iterdir() if p.is_file()}
    if name not in allowed:
        raise HTTPException(404, "no such file")
    media = {"css": "text/css", "svg": "image/svg+xml", "js": "text/javascript"}.get(name.rsplit(".", 1)[-1],
                                                                                    "text/plain")
    return Response(allowed[name].read_bytes(), media_type=media, headers={"Cache-Control": "max-age=300"})


# --- catalogue ----------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def catalogue_page(request: Request, who: ReaderPage, s: SessionDep, q: str = "", modality: str = "",
                   body_part: str = "", cancer_type: str = "", license: str = ""):
    filters = {k: v[:64] for k, v in dict(q=q, modality=modality, body_part=body_part, cancer_type=cancer_type,
                                          license=license).items()}
    data = views.catalogue(s, **filters)
    return render(request, who, "catalogue.html", data=data, filters=filters,
                  active_filters={k: v for k, v in filters.items() if v and k != "q"})


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_detail(dataset_id: str, request: Request, who: ReaderPage, s: SessionDep, gov: GovernanceDep,
                   settings: SettingsDep, publisher: PublisherDep):
    ds = s.get(Dataset, dataset_id[:64])
    sees_all = who.has_role("data-managers", "dac", "auditors")
    if ds is None or not (sees_all or views.state_value(ds.state) in views.CATALOGUE_STATES + ("invalidated",)):
        return error_page(request, who, 404, "No such dataset", f"There is no dataset {dataset_id!r} in the catalogue.")
    page = views.dataset_page(s, gov, settings.datasets_dir, ds)
    access = history(s, gov, ds.id) if sees_all else None
    standing = views.project_standing(s, gov, ds.id, who.projects) if who.projects else {
        "held": [], "pending": [], "free": []}
    published = {"doi": current_doi(s, ds.id), "can_register": who.has_role("data-managers")
                 and publisher.registry is not None} if page["state"] == "published" else None
    return render(request, who, "dataset.html", ds=page, access=access, standing=standing, published=published,
                  can_request=who.has_role("researchers") and bool(standing["free"]) and page["requestable"],
                  projects=standing["free"], max_days=gov.policy.max_duration_days,
                  spawn_url=gov_spawn_url(request))


def gov_spawn_url(request: Request) -> str:
    """Where the hub starts a workspace (the hub serves it on the same origin as this service's pages)."""
    return "/hub/spawn"


@router.post("/datasets/{dataset_id}/request")
def request_access(dataset_id: str, request: Request, who: ResearcherForm, s: SessionDep, gov: GovernanceDep,
                   project: str = Form(""), purpose: str = Form(""), intended_use: str = Form(""),
                   duration_days: str = Form(""), extends_grant_id: str = Form("")):
    back = f"{prefix_of(request)}/datasets/{quote(dataset_id)}"
    try:
        gov.submit(s, requester=who.name, requester_projects=who.projects, dataset_id=dataset_id[:64],
                   project=project, purpose=purpose, intended_use=intended_use,
                   duration_days=_int(duration_days, "the duration"),
                   extends_grant_id=_int(extends_grant_id, "the grant") if extends_grant_id else None)
    except GOVERNANCE_ERRORS as e:
        s.rollback()
        return refused(request, who, e, back)
    return done(request, "/my/requests", "requested")


# --- researcher ----------------------------------------------------------------
@router.get("/my/requests", response_class=HTMLResponse)
def my_requests_page(request: Request, who: ResearcherPage, s: SessionDep, gov: GovernanceDep):
    gov.expire_stale_requests(s)
    return render(request, who, "my_requests.html", requests=views.my_requests(s, gov, who.name),
                  quorum=gov.policy.approvals_required, max_days=gov.policy.max_duration_days)


@router.post("/my/requests/{request_id}/withdraw")
def withdraw(request_id: int, request: Request, who: ResearcherForm, s: SessionDep, gov: GovernanceDep):
    try:
        gov.withdraw(s, request_id, actor=who.name)
    except GOVERNANCE_ERRORS as e:
        s.rollback()
        return refused(request, who, e, f"{prefix_of(request)}/my/requests")
    return done(request, "/my/requests", "withdrawn")


@router.post("/my/requests/{request_id}/resubmit")
def resubmit(request_id: int, request: Request, who: ResearcherForm, s: SessionDep, gov: GovernanceDep,
             purpose: str = Form(""), intended_use: str = Form(""), duration_days: str = Form("")):
    try:
        gov.resubmit(s, request_id, actor=who.name, purpose=purpose, intended_use=intended_use,
                     duration_days=_int(duration_days, "the duration"))
    except GOVERNANCE_ERRORS as e:
        s.rollback()
        return refused(request, who, e, f"{prefix_of(request)}/my/requests")
    return done(request, "/my/requests", "resubmitted")


@router.get("/my/grants", response_class=HTMLResponse)
def my_grants_page(request: Request, who: ResearcherPage, s: SessionDep, gov: GovernanceDep):
    grants = views.project_grants(s, gov, who.projects) if who.projects else []
    return render(request, who, "my_grants.html", active=[g for g in grants if g["status"] == "active"],
                  ended=[g for g in grants if g["status"] != "active"])


# --- committee ----------------------------------------------------------------
@router.get("/dac", response_class=HTMLResponse)
def dac_page(request: Request, who: DacPage, s: SessionDep, gov: GovernanceDep):
    gov.expire_stale_requests(s)
    return render(request, who, "dac.html", q=views.dac_queue(s, gov), quorum=gov.policy.approvals_required,
                  my_projects=who.projects, form_error=None)


@router.post("/dac/requests/{request_id}/review")
def review(request_id: int, request: Request, who: DacForm, s: SessionDep, gov: GovernanceDep,
           decision: str = Form(""), reason: str = Form("")):
    back = f"{prefix_of(request)}/dac"
    if decision in ("reject", "changes") and len(reason.strip()) < 3:  # shown in the form, not on its own page
        return dac_form_error(request, who, s, gov, request_id, reason,
                              "Say why: a reason of at least 3 characters is required to "
                              + ("reject." if decision == "reject" else "ask for changes."))
    try:
        if decision == "changes":
            gov.request_changes(s, request_id, reviewer=who.name, reviewer_projects=who.projects, reason=reason)
            notice = "changes"
        elif decision in ("approve", "reject"):
            gov.vote(s, request_id, reviewer=who.name, reviewer_projects=who.projects, decision=decision,
                     reason=reason)
            notice = "voted"
        else:
            raise RuleViolation("choose approve, reject or ask for changes", 422)
    except GOVERNANCE_ERRORS as e:
        s.rollback()
        return refused(request, who, e, back)
    return done(request, "/dac", notice)


def dac_form_error(request: Request, who: Identity, s: Session, gov: Governance, request_id: int, text: str,
                   reason: str) -> HTMLResponse:
    """The committee page again, with the reason next to the request's form and what was typed kept (422)."""
    return render(request, who, "dac.html", status=422, q=views.dac_queue(s, gov),
                  quorum=gov.policy.approvals_required, my_projects=who.projects,
                  form_error={"request_id": request_id, "reason": reason, "text": text[:4000]})


@router.post("/dac/grants/{grant_id}/revoke")
def revoke(grant_id: int, request: Request, who: DacForm, s: SessionDep, gov: GovernanceDep,
           reason: str = Form("")):
    try:
        gov.revoke(s, grant_id, actor=who.name, reason=reason)
    except GOVERNANCE_ERRORS as e:
        s.rollback()
        return refused(request, who, e, f"{prefix_of(request)}/dac")
    return done(request, "/dac", "revoked")


# --- data manager ----------------------------------------------------------------
@router.get("/manage", response_class=HTMLResponse)
def manage_page(request: Request, who: ManagerPage, s: SessionDep):
    rows = views.manager_datasets(s)
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return render(request, who, "manage.html", datasets=rows, counts=counts,
                  building=any(r["state"] == "building" for r in rows))


@router.post("/manage/datasets/{dataset_id}/state")
def change_state(dataset_id: str, request: Request, who: ManagerForm, settings: SettingsDep, db: DatabaseDep,
                 publisher: PublisherDep, state: str = Form(""), reason: str = Form("")):
    back = f"{prefix_of(request)}/manage"
    try:
        target = DatasetState(state)
    except ValueError:
        return error_page(request, who, 422, "That was not possible", f"unknown state {state[:32]!r}", back)
    if target == DatasetState.invalidated:  # first say what it ends (web/manage.py), then act on the confirmation
        return RedirectResponse(f"{back}/datasets/{quote(dataset_id[:64], safe='')}/invalidate?"
                                + urlencode({"reason": reason[:500]}), status_code=303)
    try:
        transition(settings, db, dataset_id[:64], target, who.name, reason.strip()[:500])
    except NotFound as e:
        return error_page(request, who, 404, "No such dataset", str(e), back)
    except Conflict as e:
        return error_page(request, who, 409, "That was not possible", str(e), back)
    except TraceFailed:  # the tracer refused or is down: nothing changed
        return error_page(request, who, 503, "Please try again later",
                          "The change could not be recorded in the audit trail, so nothing was changed.", back)
    if target == DatasetState.published:  # a DOI when the platform has a registry
        failed = publisher.mint_after_publish(dataset_id[:64], who.name)
        if failed:
            return error_page(request, who, 502, "Published, but without a DOI",
                              f"The dataset is published; the DOI registry did not register it: {failed}. "
                              "Register it again from the data management page.", back)
    return done(request, "/manage", "state")
