"""What every web page of the platform's services answers the same way (dataset service, airlock, tracer).

- ``page_response``: an HTML page with the platform's page headers: never stored by a cache
  (``Cache-Control: no-store``: pages show grants, requests and traces of one person), never framed
  (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``), scripts and styles from the
  service's own origin only (CSP ``default-src 'self'``, no inline styles), the referrer kept on the
  origin (``Referrer-Policy: same-origin``);
- ``login_redirect``: a browser without a session is sent to the service's login (the hub's OAuth),
  which brings it back to the page it asked for (``next``: path and query);
- ``page_templates``: the Jinja environment every service renders its pages with;
- ``PageExit`` and ``install_page_exits``: a page's dependency (login, role, CSRF token, the record the
  page is about) ends the request by raising ``PageExit(response)`` (``LoginRequired``: the login
  redirect; otherwise a page saying why not), and the app's exception handler answers that response, so
  handlers receive what they need and never test what they got (the FastAPI full-stack template's
  ``api/deps.py`` style: ``Annotated[X, Depends(...)]``).
"""
from __future__ import annotations

import os
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
}


def page_response(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def login_redirect(request: Request, prefix: str) -> RedirectResponse:
    """302 to ``<prefix>/login?next=<this page>``."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{prefix}/login?next={quote(target, safe='')}", status_code=302)


def page_templates(*folders: str | os.PathLike) -> Environment:
    """The Jinja environment of a service's pages: templates from ``folders`` (the first that holds a name
    wins), HTML autoescaped, block tags trimmed (``trim_blocks``, ``lstrip_blocks``)."""
    return Environment(loader=FileSystemLoader([str(f) for f in folders]), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


class PageExit(Exception):
    """Ends a page before its handler runs: the app answers ``response`` (see ``install_page_exits``)."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


class LoginRequired(PageExit):
    """No login: the browser is sent to the service's login, which brings it back here (``login_redirect``)."""

    def __init__(self, request: Request, prefix: str):
        super().__init__(login_redirect(request, prefix))


async def _answer_page_exit(request: Request, exc: PageExit) -> Response:
    return exc.response


def install_page_exits(app: FastAPI) -> None:
    """Answer every ``PageExit`` a dependency or handler raises with its response."""
    app.add_exception_handler(PageExit, _answer_page_exit)
