"""jupyter-server extension that refuses every way of downloading a file.

Refused with 403, before any other handler sees the request:

* ``{base}files/...``           raw file downloads (JupyterLab "Download",
                                 "Open in new browser tab")
* ``{base}view/...``            the raw file viewer (embeds /files/)
* ``{base}nbconvert/...``       nbconvert exports ("Save and export as")
* ``{base}api/nbconvert``       the exporter list used by the export menu
* any request with a ``download`` query parameter (``?download=1``)

The JupyterLab plugins that offer those commands are disabled by
``etc/jupyter/labconfig/page_config.json`` (``disabledExtensions``); this
extension is the server-side enforcement, independent of the browser.
Every refusal is logged with the path (not the content).
"""

from __future__ import annotations

import re

from tornado import web
from tornado.routing import Matcher, Rule

BLOCKED_PREFIXES = ("files/", "view/", "nbconvert/", "api/nbconvert")
# JupyterLab page-config plugin ids disabled in the workspace (kept in sync with
# etc/jupyter/labconfig/page_config.json, checked by the tests).
DISABLED_LAB_PLUGINS = (
    "@jupyterlab/docmanager-extension:download",
    "@jupyterlab/filebrowser-extension:download",
    "@jupyterlab/filebrowser-extension:open-browser-tab",
    "@jupyterlab/notebook-extension:export",
)


def is_blocked(path: str, query_arguments: dict, base_url: str = "/") -> bool:
    """Pure decision: does this request try to download something?"""
    if any(k.lower() == "download" for k in query_arguments):
        return True
    base = base_url if base_url.endswith("/") else base_url + "/"
    # collapse duplicate slashes so that //files/ or /user/x//files/ are caught too
    norm = re.sub(r"/{2,}", "/", path)
    if not norm.startswith(base):
        return False
    rest = norm[len(base):]
    from urllib.parse import unquote

    rest = unquote(rest)
    rest = re.sub(r"/{2,}", "/", rest).lstrip("/")
    return any(rest == p.rstrip("/") or rest.startswith(p) for p in BLOCKED_PREFIXES)


class _DownloadMatcher(Matcher):
    def __init__(self, base_url: str):
        self.base_url = base_url

    def match(self, request):
        if is_blocked(request.path, request.query_arguments, self.base_url):
            return {}
        return None


class DownloadRefusedHandler(web.RequestHandler):
    """Answers 403 to every method."""

    def _refuse(self, *args, **kwargs):
        self.log_refusal()
        self.set_status(403)
        self.set_header("Content-Type", "application/json")
        self.finish('{"message": "Downloads are disabled in this workspace. Use the export airlock."}')

    def log_refusal(self):
        import logging

        logging.getLogger("insitu.lockdown").warning(
            "refused download attempt: %s %s", self.request.method, self.request.path
        )

    get = post = put = delete = patch = head = options = _refuse

    def check_xsrf_cookie(self):  # a refusal needs no xsrf check
        return None


def install(web_app, base_url: str) -> None:
    """Put the refusal rule first in the application's routers."""
    rule = Rule(_DownloadMatcher(base_url), DownloadRefusedHandler)
    web_app.default_router.rules.insert(0, rule)
    if getattr(web_app, "wildcard_router", None) is not None:
        web_app.wildcard_router.rules.insert(0, Rule(_DownloadMatcher(base_url), DownloadRefusedHandler))


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    install(serverapp.web_app, serverapp.base_url)
    serverapp.log.info("insitu lock-down: downloads, /files/ and nbconvert exports are refused")
