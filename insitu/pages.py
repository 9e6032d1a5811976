"""What every web page of the platform's services answers the same way (dataset service, airlock, tracer).

- ``page_response``: an HTML page with the platform's page headers: never stored by a cache
  (``Cache-Control: no-store``: pages show grants, requests and traces of one person), never framed
  (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``), scripts and styles from the
  service's own origin only (CSP ``default-src 'self'``, no inline styles), the referrer kept on the
  origin (``Referrer-Policy: same-origin``);
- ``login_redirect``: a browser without a session is sent to the service's login (the hub's OAuth),
  which brings it back to the page it asked for (``next``: path and query);
- ``page_templates``: the Jinja environment every service renders its pages with.
"""
from __future__ import annotations

import os
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
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
