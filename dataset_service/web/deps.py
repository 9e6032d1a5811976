"""What every page of the dataset service depends on, as FastAPI dependencies (``Annotated[X, Depends(...)]``,
as in the FastAPI full-stack template's ``api/deps.py``), and how a page answers.

A page's login is a dependency: ``ReaderPage``, ``ResearcherPage``, ``DacPage``, ``ManagerPage``,
``AuditorPage`` (a GET: no login is the login redirect) and ``ResearcherForm``, ``DacForm``,
``ManagerForm``, ``ReaderForm``, ``AuditorForm`` (a POST: no login is a 401 page, then the form's CSRF
token bound to the login, 403 "Form expired", then the role). A role that does not fit is a 403 page
that says whose page it is. ``ManagedDataset`` / ``ManagedDatasetForm``: the dataset of the path, or a
404 page. Each refusal is raised as ``insitu.pages.PageExit`` and answered by the app's handler
(``install_page_exits``), so a handler gets an ``Identity`` or a ``Dataset`` and nothing else.

``render``, ``error_page``, ``refused``, ``done``: the page itself, a plain-message page with its 4xx
status, the page of a refused governance step, the post/redirect/get answer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Iterable
from urllib.parse import urlencode

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from insitu.identity import Identity, optional_identity, token_from_request
from insitu.navigation import platform_nav
from insitu.names import READERS
from insitu.pages import LoginRequired, PageExit, page_response, page_templates

from ..deps import MANAGERS, SessionDep, get_settings
from ..governance.deps import governance_settings
from ..governance.rules import RuleViolation
from ..governance.service import SessionRefusedError
from ..governance.tracing import TraceFailed
from ..models import Dataset
from . import views
from .csrf import check_token, csrf_key, make_token

HERE = Path(__file__).resolve().parent
env = page_templates(HERE / "templates")
env.filters["date"] = views.fmt_date
env.filters["time"] = views.fmt_time

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

def prefix_of(request: Request) -> str:
    return get_settings(request).service_prefix


def _key(request: Request) -> bytes:
    gs = governance_settings(request)
    return csrf_key(gs.csrf_secret, get_settings(request).hub_api_token)


def _login_token(request: Request) -> str:
    return token_from_request(request, request.app.state.hub_auth.config.cookie_name)


def csrf_token(request: Request) -> str:
    """This login's CSRF token (``csrf.py``), for the forms of a page."""
    return make_token(_key(request), _login_token(request))


def csrf_ok(request: Request, token: str) -> bool:
    """``token`` is this login's CSRF token (``csrf.py``)."""
    return check_token(_key(request), _login_token(request), token)


def nav(who: Identity, prefix: str) -> list[dict]:
    """The platform's one bar (``insitu.navigation``), as on the hub's home: back home, the catalogue's
    pages, the airlock, the audit trail, each for the roles that can use it."""
    return platform_nav(who.roles, catalogue=prefix)


def render(request: Request, who: Identity | None, template: str, status: int = 200, **ctx) -> HTMLResponse:
    prefix = prefix_of(request)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = env.get_template(template).render(
        prefix=prefix, who=who, nav=nav(who, prefix) if who else [], notice=notice,
        csrf_token=csrf_token(request) if who else "",
        path=request.url.path, roles=sorted(who.roles) if who else [], status=status, **ctx)
    return page_response(html, status)


def error_page(request: Request, who: Identity | None, status: int, title: str, reason: str,
               back: str | None = None) -> HTMLResponse:
    return render(request, who, "error.html", status=status, title=title, reason=reason,
                  back=back or prefix_of(request) + "/")


def _expired_login(request: Request) -> PageExit:
    return PageExit(error_page(request, None, 401, "Please log in", "Your login has expired; log in again."))


def _check_role(request: Request, who: Identity, roles: Iterable[str]) -> Identity:
    if not who.has_role(*roles):
        raise PageExit(error_page(request, who, 403, "Not for your role",
                                  f"This page is for {' and '.join(ROLE_WORDS.get(r, r) for r in roles)}. "
                                  "Ask an administrator if you need access."))
    return who


def page_login(*roles: str) -> Callable[..., Identity]:
    """A page's caller holding one of ``roles``: a GET without a login is sent to log in, another method
    gets a 401 page; a caller without the role a 403 page."""
    def dependency(request: Request, who: Identity | None = Depends(optional_identity)) -> Identity:
        if who is None:
            if request.method == "GET":
                raise LoginRequired(request, prefix_of(request))
            raise _expired_login(request)
        return _check_role(request, who, roles)
    return dependency


def form_login(*roles: str) -> Callable[..., Identity]:
    """A posted form's caller: logged in (else a 401 page), the form's ``csrf_token`` bound to that login
    (else 403 "Form expired"), holding one of ``roles`` (else a 403 page)."""
    def dependency(request: Request, who: Identity | None = Depends(optional_identity),
                   csrf_token: str = Form("")) -> Identity:
        if who is None:
            raise _expired_login(request)
        if not csrf_ok(request, csrf_token):
            raise PageExit(error_page(request, who, 403, "Form expired",
                                      "The form's security token is missing or does not match your login. "
                                      "Reload the page and try again."))
        return _check_role(request, who, roles)
    return dependency


def json_login(*roles: str) -> Callable[..., Identity]:
    """The caller of a page's JSON helper (the live count, the progress): refused with a JSON word and the
    status a page would have (302 without a login on a GET, 401 otherwise, 403 for another role)."""
    def dependency(request: Request, who: Identity | None = Depends(optional_identity)) -> Identity:
        if who is None or not who.has_role(*roles):
            status = 403 if who is not None else 302 if request.method == "GET" else 401
            raise PageExit(JSONResponse({"error": "log in as a data manager"}, status_code=status))
        return who
    return dependency


page_reader, form_reader = page_login(*READERS), form_login(*READERS)
page_researcher, form_researcher = page_login("researchers"), form_login("researchers")
page_dac, form_dac = page_login("dac"), form_login("dac")
page_manager, form_manager = page_login(*MANAGERS), form_login(*MANAGERS)
page_auditor, form_auditor = page_login("auditors"), form_login("auditors")

ReaderPage = Annotated[Identity, Depends(page_reader)]
ReaderForm = Annotated[Identity, Depends(form_reader)]
ResearcherPage = Annotated[Identity, Depends(page_researcher)]
ResearcherForm = Annotated[Identity, Depends(form_researcher)]
DacPage = Annotated[Identity, Depends(page_dac)]
DacForm = Annotated[Identity, Depends(form_dac)]
ManagerPage = Annotated[Identity, Depends(page_manager)]
ManagerForm = Annotated[Identity, Depends(form_manager)]
ManagerJson = Annotated[Identity, Depends(json_login(*MANAGERS))]
AuditorPage = Annotated[Identity, Depends(page_auditor)]
AuditorForm = Annotated[Identity, Depends(form_auditor)]


def dataset_of(login: Callable[..., Identity]) -> Callable[..., Dataset]:
    """The dataset of the path for a data manager's page (after ``login``'s checks), or a 404 page."""
    def dependency(dataset_id: str, request: Request, s: SessionDep, who: Identity = Depends(login)) -> Dataset:
        ds = s.get(Dataset, dataset_id[:64])
        if ds is None:
            raise PageExit(error_page(request, who, 404, "No such dataset", f"There is no dataset {dataset_id[:64]!r}.",
                                      f"{prefix_of(request)}/manage"))
        return ds
    return dependency


ManagedDataset = Annotated[Dataset, Depends(dataset_of(page_manager))]
ManagedDatasetForm = Annotated[Dataset, Depends(dataset_of(form_manager))]


def refused(request: Request, who: Identity, e: Exception, back: str) -> HTMLResponse:
    """The page of a governance step that was refused (``GOVERNANCE_ERRORS``)."""
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
    return RedirectResponse(f"{prefix_of(request)}{path}?{q}", status_code=303)
