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
from typing import Iterable
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from insitu.identity import Identity, optional_identity, token_from_request
from insitu.pages import login_redirect, page_response, page_templates
from insitu.navigation import platform_nav

from ..deps import READERS, get_session, get_settings
from ..governance.deps import GOVERNANCE_ERRORS, get_governance, governance_settings
from ..governance.rules import RuleViolation
from ..governance.service import Governance, SessionRefusedError
from ..governance.tracing import TraceFailed
from ..models import Dataset
from ..settings import Settings
from . import views
from .csrf import check_token, csrf_key, make_token

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
env = page_templates(HERE / "templates")
env.filters["date"] = views.fmt_date
env.filters["time"] = views.fmt_time

router = APIRouter(include_in_schema=False)

ROLE_WORDS = {"researchers": "researchers", "data-managers": "data managers", "dac": "the data access committee",
              "auditors": "auditors"}
NOTICES = {
    "requested": "Your request was sent to the data access committee.",
    "withdrawn": "The request was withdrawn.",
    "resubmitted": "The request was resubmitted for review.",
    "voted": "Your vote was recorded.",
    "changes": "The requester was asked for changes.",
    "revoked": "The grant was revoked. Workspaces using it are being stopped.",
    "state": "The dataset's state was changed.",
    "read": "Every notification is marked read.",
    "indexing": "Indexing started: this page shows the run when it ends.",
    "building": "The dataset is being built: its progress shows below.",
    "edited": "The metadata was changed (and traced).",
    "doi": "The DOI was registered.",
}


class PageError(Exception):
    def __init__(self, status: int, title: str, reason: str):
        self.status, self.title, self.reason = status, title, reason


def _prefix(request: Request) -> str:
    return request.app.state.settings.service_prefix


def _key(request: Request) -> bytes:
    gs = governance_settings(request)
    return csrf_key(gs.csrf_secret, request.app.state.settings.hub_api_token)


def _login_token(request: Request) -> str:
    return token_from_request(request, request.app.state.hub_auth.config.cookie_name)


def nav(who: Identity, prefix: str) -> list[dict]:
    """The platform's one bar (``insitu.navigation``), as on the hub's home: back home, the catalogue's
    pages, the airlock, the audit trail, each for the roles that can use it."""
    return platform_nav(who.roles, catalogue=prefix)


def render(request: Request, who: Identity | None, template: str, status: int = 200, **ctx) -> HTMLResponse:
    prefix = _prefix(request)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = env.get_template(template).render(
        prefix=prefix, who=who, nav=nav(who, prefix) if who else [], notice=notice,
        csrf_token=make_token(_key(request), _login_token(request)) if who else "",
        path=request.url.path, roles=sorted(who.roles) if who else [], status=status, **ctx)
    return page_response(html, status)


def error_page(request: Request, who: Identity | None, status: int, title: str, reason: str,
               back: str | None = None) -> HTMLResponse:
    return render(request, who, "error.html", status=status, title=title, reason=reason,
                  back=back or _prefix(request) + "/")


def need(request: Request, who: Identity | None, roles: Iterable[str]) -> Identity | Response:
    """The identity when it holds one of ``roles``; a login redirect or a 403 page otherwise."""
    if who is None:
        if request.method == "GET":
            return login_redirect(request, _prefix(request))
        return error_page(request, None, 401, "Please log in", "Your login has expired; log in again.")
    if not who.has_role(*roles):
        return error_page(request, who, 403, "Not for your role",
                          f"This page is for {' and '.join(ROLE_WORDS.get(r, r) for r in roles)}. "
                          "Ask an administrator if you need access.")
    return who


def checked_post(request: Request, who: Identity | None, roles: Iterable[str], csrf_token: str) -> Identity | Response:
    if who is None:
        return error_page(request, None, 401, "Please log in", "Your login has expired; log in again.")
    if not check_token(_key(request), _login_token(request), csrf_token):
        return error_page(request, who, 403, "Form expired",
                          "The form's security token is missing or does not match your login. Reload the page "
                          "and try again.")
    return need(request, who, roles)


def refused(request: Request, who: Identity, e: Exception, back: str) -> HTMLResponse:
    if isinstance(e, RuleViolation):
        return error_page(request, who, e.status, "That was not possible", e.reason, back)
    if isinstance(e, SessionRefusedError):
        return error_page(request, who, 403, "That was not possible", e.reason, back)
    if isinstance(e, TraceFailed):
        return error_page(request, who, 503, "Please try again later",
                          "The action could not be recorded in the audit trail, so nothing was changed.", back)
    return error_page(request, who, 503, "Please try again later", "The hub cannot be reached.", back)


def done(request: Request, path: str, notice: str, **params) -> RedirectResponse:
    q = urlencode({"notice": notice, **params})
    return RedirectResponse(f"{_prefix(request)}{path}?{q}", status_code=303)


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
def catalogue_page(request: Request, who: Identity | None = Depends(optional_identity),
                   s: Session = Depends(get_session, scope="function"), q: str = "", modality: str = "", body_part: str = "",
                   cancer_type: str = "", license: str = ""):
    who = need(request, who, READERS)
    if isinstance(who, Response):
        return who
    filters = {k: v[:64] for k, v in dict(q=q, modality=modality, body_part=body_part, cancer_type=cancer_type,
                                          license=license).items()}
    data = views.catalogue(s, **filters)
    return render(request, who, "catalogue.html", data=data, filters=filters,
                  active_filters={k: v for k, v in filters.items() if v and k != "q"})


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_detail(dataset_id: str, request: Request, who: Identity | None = Depends(optional_identity),
                   s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance),
                   settings: Settings = Depends(get_settings)):
    who = need(request, who, READERS)
    if isinstance(who, Response):
        return who
    ds = s.get(Dataset, dataset_id[:64])
    sees_all = who.has_role("data-managers", "dac", "auditors")
    if ds is None or not (sees_all or views.state_value(ds.state) in views.CATALOGUE_STATES + ("invalidated",)):
        return error_page(request, who, 404, "No such dataset", f"There is no dataset {dataset_id!r} in the catalogue.")
    page = views.dataset_page(s, gov, settings.datasets_dir, ds)
    from ..governance.api import history

    access = history(s, gov, ds.id) if sees_all else None
    standing = views.project_standing(s, gov, ds.id, who.projects) if who.projects else {
        "held": [], "pending": [], "free": []}
    from ..publication.service import current_doi

    published = {"doi": current_doi(s, ds.id), "can_register": who.has_role("data-managers")
                 and request.app.state.doi_registry is not None} if page["state"] == "published" else None
    return render(request, who, "dataset.html", ds=page, access=access, standing=standing, published=published,
                  can_request=who.has_role("researchers") and bool(standing["free"]) and page["requestable"],
                  projects=standing["free"], max_days=gov.policy.max_duration_days,
                  spawn_url=gov_spawn_url(request))


def gov_spawn_url(request: Request) -> str:
    """Where the hub starts a workspace (the hub serves it on the same origin as this service's pages)."""
    return "/hub/spawn"


@router.post("/datasets/{dataset_id}/request")
def request_access(dataset_id: str, request: Request, who: Identity | None = Depends(optional_identity),
                   s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance),
                   csrf_token: str = Form(""), project: str = Form(""), purpose: str = Form(""),
                   intended_use: str = Form(""), duration_days: str = Form(""), extends_grant_id: str = Form("")):
    who = checked_post(request, who, ("researchers",), csrf_token)
    if isinstance(who, Response):
        return who
    back = f"{_prefix(request)}/datasets/{quote(dataset_id)}"
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
def my_requests_page(request: Request, who: Identity | None = Depends(optional_identity),
                     s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance)):
    who = need(request, who, ("researchers",))
    if isinstance(who, Response):
        return who
    gov.expire_stale_requests(s)
    return render(request, who, "my_requests.html", requests=views.my_requests(s, gov, who.name),
                  quorum=gov.policy.approvals_required, max_days=gov.policy.max_duration_days)


@router.post("/my/requests/{request_id}/withdraw")
def withdraw(request_id: int, request: Request, who: Identity | None = Depends(optional_identity),
             s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance),
             csrf_token: str = Form("")):
    who = checked_post(request, who, ("researchers",), csrf_token)
    if isinstance(who, Response):
        return who
    try:
        gov.withdraw(s, request_id, actor=who.name)
    except GOVERNANCE_ERRORS as e:
        s.rollback()
        return refused(request, who, e, f"{_prefix(request)}/my/requests")
    return done(request, "/my/requests", "withdrawn")


@router.post("/my/requests/{request_id}/resubmit")
def resubmit(request_id: int, request: Request, who: Identity | None = Depends(optional_identity),
             s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance),
             csrf_token: str = Form(""), purpose: str = Form(""), intended_use: str = Form(""),
             duration_days: str = Form("")):
    who = checked_post(request, who, ("researchers",), csrf_token)
    if isinstance(who, Response):
        return who
    try:
        gov.resubmit(s, request_id, actor=who.name, purpose=purpose, intended_use=intended_use,
                     duration_days=_int(duration_days, "the duration"))
    except GOVERNANCE_ERRORS as e:
        s.rollback()
        return refused(request, who, e, f"{_prefix(request)}/my/requests")
    return done(request, "/my/requests", "resubmitted")


@router.get("/my/grants", response_class=HTMLResponse)
def my_grants_page(request: Request, who: Identity | None = Depends(optional_identity),
                   s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance)):
    who = need(request, who, ("researchers",))
    if isinstance(who, Response):
        return who
    grants = views.project_grants(s, gov, who.projects) if who.projects else []
    return render(request, who, "my_grants.html", active=[g for g in grants if g["status"] == "active"],
                  ended=[g for g in grants if g["status"] != "active"])


# --- committee ----------------------------------------------------------------
@router.get("/dac", response_class=HTMLResponse)
def dac_page(request: Request, who: Identity | None = Depends(optional_identity),
             s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance)):
    who = need(request, who, ("dac",))
    if isinstance(who, Response):
        return who
    gov.expire_stale_requests(s)
    return render(request, who, "dac.html", q=views.dac_queue(s, gov), quorum=gov.policy.approvals_required,
                  my_projects=who.projects, form_error=None)


@router.post("/dac/requests/{request_id}/review")
def review(request_id: int, request: Request, who: Identity | None = Depends(optional_identity),
           s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance),
           csrf_token: str = Form(""), decision: str = Form(""), reason: str = Form("")):
    who = checked_post(request, who, ("dac",), csrf_token)
    if isinstance(who, Response):
        return who
    back = f"{_prefix(request)}/dac"
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
def revoke(grant_id: int, request: Request, who: Identity | None = Depends(optional_identity),
           s: Session = Depends(get_session, scope="function"), gov: Governance = Depends(get_governance),
           csrf_token: str = Form(""), reason: str = Form("")):
    who = checked_post(request, who, ("dac",), csrf_token)
    if isinstance(who, Response):
        return who
    try:
        gov.revoke(s, grant_id, actor=who.name, reason=reason)
    except GOVERNANCE_ERRORS as e:
        s.rollback()
        return refused(request, who, e, f"{_prefix(request)}/dac")
    return done(request, "/dac", "revoked")


# --- data manager ----------------------------------------------------------------
@router.get("/manage", response_class=HTMLResponse)
def manage_page(request: Request, who: Identity | None = Depends(optional_identity),
                s: Session = Depends(get_session, scope="function")):
    who = need(request, who, ("data-managers",))
    if isinstance(who, Response):
        return who
    rows = views.manager_datasets(s)
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return render(request, who, "manage.html", datasets=rows, counts=counts,
                  building=any(r["state"] == "building" for r in rows))


@router.post("/manage/datasets/{dataset_id}/state")
def change_state(dataset_id: str, request: Request, who: Identity | None = Depends(optional_identity),
                 settings: Settings = Depends(get_settings), csrf_token: str = Form(""), state: str = Form(""),
                 reason: str = Form("")):
    who = checked_post(request, who, ("data-managers",), csrf_token)
    if isinstance(who, Response):
        return who
    from ..models import DatasetState
    from ..operations import Conflict, NotFound, transition

    back = f"{_prefix(request)}/manage"
    try:
        target = DatasetState(state)
    except ValueError:
        return error_page(request, who, 422, "That was not possible", f"unknown state {state[:32]!r}", back)
    if target.value == "invalidated":  # first say what it ends (web/manage.py), then act on the confirmation
        return RedirectResponse(f"{back}/datasets/{quote(dataset_id[:64], safe='')}/invalidate?"
                                + urlencode({"reason": reason[:500]}), status_code=303)
    try:
        transition(settings, request.app.state.db, dataset_id[:64], target, who.name, reason.strip()[:500])
    except NotFound as e:
        return error_page(request, who, 404, "No such dataset", str(e), back)
    except Conflict as e:
        return error_page(request, who, 409, "That was not possible", str(e), back)
    except Exception as e:  # the tracer refused or is down: nothing changed
        if type(e).__module__.startswith("tracer"):
            return error_page(request, who, 503, "Please try again later",
                              "The change could not be recorded in the audit trail, so nothing was changed.", back)
        raise
    if target.value == "published":  # a DOI when the platform has a registry
        from ..publication.service import mint_after_publish

        failed = mint_after_publish(request, dataset_id[:64], who.name)
        if failed:
            return error_page(request, who, 502, "Published, but without a DOI",
                              f"The dataset is published; the DOI registry did not register it: {failed}. "
                              "Register it again from the data management page.", back)
    return done(request, "/manage", "state")
