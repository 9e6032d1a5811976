"""Web pages of the export airlock (under the service prefix, browser login through the hub).

- ``GET /exports``: the caller's requests (researchers) or the review queue
  (reviewers, auditors), and the researcher's workspace drafts;
- ``GET /exports/new[?draft=ID]``: choose files from the home (or a draft
  written by ``python -m hub.workspace.export``) with a justification;
  ``POST /exports/new`` submits (files frozen at that moment);
- ``GET /exports/{id}``: files with kinds, sizes, SHA-256 digests, findings,
  previews for reviewers, the reviews, download links for the requester of an
  approved request; ``POST /exports/{id}/review``: approve, reject with a
  reason, or return for changes;
- ``GET /exports/{id}/files/{file_id}/download`` and ``.../preview.png``: the
  same rules as the API.

Every form carries a CSRF token bound to the user and the login cookie; the
cookie is SameSite=Lax. A page without a login redirects to the hub's OAuth.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from insitu.identity import Identity, OptionalIdentity
from insitu.pages import LoginRequired, PageExit, page_response, page_templates

from ..db import Database
from ..deps import DatabaseDep
from ..web.deps import csrf_ok, csrf_token, prefix_of
from ..web.deps import nav as service_nav

from .deps import AirlockDep, download_response, preview_response
from .service import Airlock, AirlockError
from .store import list_home
from .tracing import TraceFailed

HERE = Path(__file__).resolve().parent
# airlock templates first, then the service's shared ones (base.html of dataset_service/web)
_env = page_templates(HERE / "templates", HERE.parent / "web" / "templates")

router = APIRouter(include_in_schema=False)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


_env.filters["size"] = _size


async def _posted_form(request: Request, who: Identity | None, back: str, *, researcher: bool = False) -> FormData:
    """The form a logged-in browser (a researcher's, with ``researcher``) posted with this login's CSRF token;
    otherwise the page refusing it is raised (``PageExit``)."""
    if who is None:
        raise PageExit(_refused(request, None, 401, "Your login has expired: log in again.",
                                None if researcher else back))
    if researcher:
        _researcher(request, who)
    form = await request.form()
    if not csrf_ok(request, str(form.get("csrf_token", ""))):
        raise PageExit(_refused(request, who, 403, FORM_EXPIRED, back))
    return form


def _person(request: Request, who: OptionalIdentity) -> Identity:
    """A page's caller; a browser without a login is sent to log in."""
    if who is None:
        raise LoginRequired(request, _prefix(request))
    return who


def _researcher(request: Request, who: Identity) -> Identity:
    if who.is_service or not who.has_role("researchers"):
        raise PageExit(_refused(request, who, 403, ONLY_RESEARCHERS))
    return who


def _researcher_page(request: Request, who: Annotated[Identity, Depends(_person)]) -> Identity:
    return _researcher(request, who)


Person = Annotated[Identity, Depends(_person)]
ResearcherPage = Annotated[Identity, Depends(_researcher_page)]
FORM_EXPIRED = "The form expired or did not come from this site: reload the page and try again."
ONLY_RESEARCHERS = "Only researchers ask for exports, from their own workspace home."
TITLES = {401: "Please log in", 403: "Not allowed", 404: "Not found", 409: "That was not possible",
          503: "Please try again later"}


def _refused(request: Request, who: Identity | None, status: int, reason, back: str | None = None) -> HTMLResponse:
    """A refusal as a page of the platform (status and a plain reason), never raw JSON in the browser."""
    if isinstance(reason, dict):
        reason = str(reason.get("reason", "refused"))
    prefix = _prefix(request)
    html = _env.get_template("error.html").render(
        request=request, who=who, prefix=prefix, nav=_nav(who, prefix) if who else [],
        roles=sorted(who.roles) if who else [], path=request.url.path, notice=None, csrf_token="",
        status=status, title=TITLES.get(status, "That was not possible"), reason=str(reason),
        back=back or f"{prefix}/exports")
    return page_response(html, status)


def _prefix(request: Request) -> str:
    return prefix_of(request)


def _nav(who: Identity, prefix: str) -> list[dict]:
    items = service_nav(who, prefix)
    if not any(i["href"] == f"{prefix}/exports" for i in items):
        items.append({"label": "Exports", "href": f"{prefix}/exports"})
    return items


def _render(request: Request, name: str, who: Identity, status: int = 200, **ctx) -> HTMLResponse:
    prefix = _prefix(request)
    html = _env.get_template(name).render(
        request=request, who=who, prefix=prefix, nav=_nav(who, prefix), roles=sorted(who.roles),
        path=request.url.path, notice=None, csrf_token=csrf_token(request), **ctx)
    return page_response(html, status)


@router.get("/exports/airlock.css")
def airlock_css():
    return FileResponse(HERE / "static" / "airlock.css", media_type="text/css",
                        headers={"Cache-Control": "max-age=300"})


def _error_text(e: AirlockError) -> tuple[str, list]:
    if isinstance(e.reason, dict):
        return str(e.reason.get("reason", "refused")), list(e.reason.get("refused", []))
    return str(e.reason), []


@router.get("/exports", response_class=HTMLResponse)
def exports_page(request: Request, who: Person, airlock: AirlockDep, db: DatabaseDep):
    if who.is_service:
        return _refused(request, who, 403, "These pages are for people.")
    with db.session() as s:
        mine = [airlock.view(r, who) for r in airlock.listing(s, who, mine=True)]
        queue = []
        if airlock.is_reviewer(who) or who.has_role("auditors"):
            queue = [airlock.view(r, who) for r in airlock.listing(s, who)]
            queue = [v for v in queue if v["requester"] != who.name]
        drafts = airlock.drafts(s, who.name) if who.has_role("researchers") else []
    return _render(request, "airlock/list.html", who, mine=mine, queue=queue, drafts=drafts,
                   researcher=who.has_role("researchers"), reviewer=airlock.is_reviewer(who))


@router.get("/exports/new", response_class=HTMLResponse)
def new_page(request: Request, who: ResearcherPage, airlock: AirlockDep, db: DatabaseDep, draft: str | None = None,
             replaces: str | None = None):
    if replaces:  # ask again after a return: the returned request's files, justification and session
        try:
            with db.session() as s:
                again = airlock.ask_again(s, who, replaces[:64])
        except AirlockError as e:
            return _new_form(request, who, airlock, db, status=e.status, error=_error_text(e)[0])
        return _new_form(request, who, airlock, db, chosen=again["files"], justification=again["justification"],
                         session_id=again["session_id"], again=again)
    return _new_form(request, who, airlock, db, draft_id=draft)


def _new_form(request: Request, who: Identity, airlock: Airlock, db: Database, *, draft_id: str | None = None,
              status: int = 200, error: str | None = None, refused: list | None = None,
              chosen: list[str] | None = None, justification: str = "", session_id: str | None = None, again: dict | None = None) -> HTMLResponse:
    with db.session() as s:
        drafts = airlock.drafts(s, who.name)
        sessions = airlock.sessions_of(s, who.name)
        try:  # the home of the chosen (or latest) session's project: one home per user and project
            files = list_home(airlock.home_for(who, None, airlock._session_link(s, who.name, session_id)))
        except AirlockError:
            files = []
    draft = next((d for d in drafts if d["draft_id"] == draft_id), None) if draft_id else None
    return _render(request, "airlock/new.html", who, status=status, files=files, drafts=drafts, draft=draft,
                   sessions=sessions, error=error, refused=refused or [], chosen=set(chosen or []),
                   justification=justification, session_id=session_id, again=again)


@router.post("/exports/new")
async def new_submit(request: Request, who: OptionalIdentity, airlock: AirlockDep, db: DatabaseDep):
    form = await _posted_form(request, who, f"{_prefix(request)}/exports/new", researcher=True)
    names = [str(x) for x in form.getlist("files")]
    justification = str(form.get("justification", ""))
    session_id = str(form.get("session_id", "")) or None
    draft_id = str(form.get("draft", "")) or None
    replaces = str(form.get("replaces", ""))[:64] or None
    try:
        with db.session() as s:
            if draft_id:
                req = airlock.submit_draft(s, who, draft_id)
            else:
                req = airlock.submit(s, who, files=names, justification=justification, session_id=session_id,
                                     replaces=replaces)
            rid = req.id
    except AirlockError as e:
        msg, refused = _error_text(e)
        again = None
        if replaces:
            try:
                with db.session() as s:
                    again = airlock.ask_again(s, who, replaces)
            except AirlockError:
                again = None
        return _new_form(request, who, airlock, db, status=e.status, error=msg, refused=refused, chosen=names,
                         justification=justification, session_id=session_id, draft_id=draft_id, again=again)
    except TraceFailed as e:
        return _new_form(request, who, airlock, db, status=503, error=str(e), chosen=names, justification=justification)
    return RedirectResponse(f"{_prefix(request)}/exports/{rid}", status_code=303)


@router.post("/exports/drafts/{draft_id}/discard")
async def discard_draft(draft_id: str, request: Request, who: OptionalIdentity, airlock: AirlockDep):
    back = f"{_prefix(request)}/exports"
    await _posted_form(request, who, back)
    try:
        airlock.discard_draft(who, draft_id[:64])
    except AirlockError as e:
        return _refused(request, who, e.status, e.reason, back)
    return RedirectResponse(back, status_code=303)


@router.get("/exports/{request_id}", response_class=HTMLResponse)
def detail_page(request_id: str, request: Request, who: Person, airlock: AirlockDep, db: DatabaseDep,
                error: str | None = None):
    try:
        with db.session() as s:
            req = airlock.load(s, request_id)
            if not airlock.can_see(who, req):
                raise AirlockError(403, "not your export request")
            view = airlock.view(req, who)
            reviewer = airlock.can_review(who, req)
            changes = airlock.changes_since_replaced(s, req)
    except AirlockError as e:
        return _refused(request, who, e.status, e.reason)
    if changes:
        from ..web.history import word_diff

        changes["justification_diff"] = word_diff(changes["justification_before"], view["justification"])
    return _render(request, "airlock/detail.html", who, status=200 if not error else 400, r=view, reviewer=reviewer,
                   error=error, changes=changes)


@router.post("/exports/{request_id}/review")
async def review_submit(request_id: str, request: Request, who: OptionalIdentity, airlock: AirlockDep, db: DatabaseDep):
    back = f"{_prefix(request)}/exports/{request_id[:64]}"
    form = await _posted_form(request, who, back)
    decision = str(form.get("decision", ""))
    reason = str(form.get("reason", ""))
    files = None
    if decision == "files":  # a decision and a comment per file (file-<id>, comment-<id>)
        decision, files = None, {}
        for key in form.keys():
            if key.startswith("file-") and key[5:].isdigit() and len(key) < 24:
                files[int(key[5:])] = (str(form.get(key, "")), str(form.get(f"comment-{key[5:]}", ""))[:4000])
    try:
        with db.session() as s:
            airlock.review(s, request_id, who, decision=decision, reason=reason, files=files)
    except AirlockError as e:
        if e.status in (400, 422):  # bad input: said on the page, nothing changed
            return detail_page(request_id, request, who, airlock, db, error=str(e.reason))
        return _refused(request, who, e.status, e.reason, back)
    except TraceFailed:
        return _refused(request, who, 503, "The review could not be recorded in the audit trail, so nothing was "
                                           "changed.", back)
    return RedirectResponse(f"{_prefix(request)}/exports/{request_id}", status_code=303)


@router.get("/exports/{request_id}/files/{file_id}/download")
def download_page(request_id: str, file_id: int, request: Request, who: Person, airlock: AirlockDep, db: DatabaseDep):
    try:
        return download_response(airlock, db, request_id, file_id, who)
    except HTTPException as e:  # said on a page: the browser followed a link
        return _refused(request, who, e.status_code, e.detail, f"{_prefix(request)}/exports/{request_id[:64]}")


@router.get("/exports/{request_id}/files/{file_id}/preview.png")
def preview_page(request_id: str, file_id: int, request: Request, who: OptionalIdentity,
                 airlock: AirlockDep, db: DatabaseDep) -> Response:
    if who is None:
        raise HTTPException(401, "log in first")
    return preview_response(airlock, db, request_id, file_id, who)
