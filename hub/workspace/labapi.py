"""Server side of the workspace's JupyterLab extension (``share/jupyter/labextensions/insitu-workspace``).

* ``GET  {base}insitu/notice``: what the platform has to say before it stops this
  workspace (a revoked or expired grant). The hub writes it, as root, into the
  workspace's read-only hub folder (``$INSITU_NOTICE_FILE``,
  ``/run/insitu-hub/notice.json``) and waits a few seconds before stopping the
  server; JupyterLab polls this route, shows the notice and saves the open
  documents. ``{}`` when there is nothing to say.
* ``POST {base}insitu/exports``: "Request export…" in the file browser, for the
  selected files: writes an export draft in the home exactly as ``insitu-export``
  does (``export.py``) and answers where to submit and follow it. Same checks:
  files in the home, no symlinks, regular files only.
* ``GET  {base}insitu/exports``: the drafts written so far (for the exports panel), and where the
  browser follows them: ``status_url``, ``{base}insitu/export-status`` on the workspace's own origin,
  answered by the workspace gateway outside the sandbox (``hub/gateway_exports.py``: the states of
  the owner's requests, each with the ``draft_id`` it came from, asked of the airlock by the gateway),
  never by this server; and ``request_url``, the airlock's page of one request (id appended). The
  workspace never asks the airlock (it reaches only its hub API). The airlock's pages are linked at
  the dataset service's public origin (``airlock_base``): with per-user and per-service origins
  (``JUPYTERHUB_HOST`` set: the hub's ``subdomain_host``) JupyterHub's subdomain rule for the
  service, else a path on the hub's origin.
* ``GET  {base}insitu/datasets``: the workspace's datasets by name, where each is mounted and
  the grant it comes through (for the Datasets panel; ``granted.py``: from the manifests and
  the environment the spawner gave, nothing asked of a service).

All routes need the server's own authentication (``JupyterHandler`` +
``@web.authenticated``), as every other route of the server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .export import DRAFT_DIR, SERVICE_PREFIX, ExportError, home_dir, name_in_home, write_draft

NOTICE_FILE = "/run/insitu-hub/notice.json"
SERVICE_NAME = SERVICE_PREFIX.rsplit("/", 1)[1]


def airlock_base(hub_host: str | None = None) -> str:
    """The airlock pages' public URL prefix: ``SERVICE_PREFIX`` on the service's own origin when the hub
    has per-user and per-service origins (``JUPYTERHUB_HOST``), else the path on the hub's origin."""
    host = os.environ.get("JUPYTERHUB_HOST", "") if hub_host is None else hub_host
    u = urlparse(host)
    if not (u.scheme and u.hostname):
        return SERVICE_PREFIX
    # JupyterHub's subdomain_hook_idna for a service: "<name>--service.<host>" (the name is DNS-safe already)
    origin = f"{u.scheme}://{SERVICE_NAME}--service.{u.hostname}" + (f":{u.port}" if u.port else "")
    return origin + SERVICE_PREFIX


class NoticeHandler(APIHandler):
    @web.authenticated
    def get(self):
        path = os.environ.get("INSITU_NOTICE_FILE", NOTICE_FILE)
        try:
            notice = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            notice = {}
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(notice if isinstance(notice, dict) else {}))


class ExportHandler(APIHandler):
    @web.authenticated
    def get(self):
        home, airlock = home_dir(), airlock_base()
        drafts = []
        for p in sorted((home / DRAFT_DIR).glob("*.json")):
            try:
                d = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            drafts.append({"id": d.get("id"), "created_at": d.get("created_at"),
                           "files": [f.get("name") for f in d.get("files", [])],
                           "submit_url": f"{airlock}/exports/new?draft={d.get('id')}"})
        self.finish(json.dumps({"drafts": drafts, "follow_url": f"{airlock}/exports",
                                "status_url": url_path_join(self.base_url, "insitu/export-status"),
                                "request_url": f"{airlock}/exports/"}))

    @web.authenticated
    def post(self):
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the request is not JSON") from None
        paths, justification = body.get("paths"), str(body.get("justification") or "").strip()
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise web.HTTPError(400, "choose one or more files")
        home = home_dir()
        try:
            if len(justification) < 10:
                raise ExportError("explain in the justification (10 characters or more) what the files are")
            names = []
            for p in paths:
                n = name_in_home(str(home / p.lstrip("/")), home)
                if n not in names:
                    names.append(n)
            draft = write_draft(home, names, justification, os.environ.get("INSITU_SESSION_ID"))
        except ExportError as e:
            self.set_status(400)
            self.finish(json.dumps({"message": str(e)}))
            return
        self.set_status(201)
        self.finish(json.dumps({"id": draft["id"], "files": [f["name"] for f in draft["files"]],
                                "submit_url": f"{airlock_base()}/exports/new?draft={draft['id']}",
                                "follow_url": f"{airlock_base()}/exports"}))


class DatasetsHandler(APIHandler):
    @web.authenticated
    def get(self):
        from .granted import workspace_datasets

        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(workspace_datasets()))


def install(serverapp) -> None:
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [
        (url_path_join(base, "insitu/notice"), NoticeHandler),
        (url_path_join(base, "insitu/exports"), ExportHandler),
        (url_path_join(base, "insitu/datasets"), DatasetsHandler),
    ])
