"""The exports panel's states, answered by the workspace gateway itself.

JupyterLab's "My exports" panel (``hub/workspace/share/jupyter/labextensions/insitu-workspace``)
follows each submitted draft until it is approved. The states live at the export airlock (the
dataset service), on another origin than the workspace in the embedded default (per-user and
per-service subdomains, cookies ``SameSite=Lax``, no CORS): a browser on the workspace's page
cannot ask the airlock, and the workspace itself must not (it reaches only its hub API). So the
gateway, which already authenticates the owner outside the sandbox, answers one route of its own,
on the workspace's origin, never forwarded to the server:

``GET {base}insitu/export-status`` → ``200 {"requests": [{request_id, draft_id, state, approvals,
quorum, decided_at}]}``: the workspace owner's requests (of this workspace's project when the
gateway knows it), newest first, nothing else (no file names, no justification, no reviewers).

* Who: the owner's *browser session* only. The gateway's owner check applies (another user, a
  service, a token without ``access:servers!server=<owner>/`` get 403; no session: the hub's
  login), and a request carrying a token (``Authorization`` or ``?token=``) is refused: the
  workspace's own server token, which kernel code can read, does not read the states.
* How the gateway asks: ``GET <dataset service>/api/users/<owner>/exports?project=`` with the
  platform's hub service token it already holds to report refusals (``report_url``,
  ``report_token``); the airlock answers that service only. The owner's name and project come
  from the gateway's configuration, never from the request. Nothing new reaches the sandbox.
* Failing: no airlock configured, the airlock unreachable → ``503``; an answer that is not the
  list of states → ``502``; always ``{"reason": "..."}`` that the panel shows as a plain line.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import quote, urlencode

from tornado import httpclient, web

log = logging.getLogger("insitu.gateway")

ROUTE = "insitu/export-status"
FIELDS = ("request_id", "draft_id", "state", "approvals", "quorum", "decided_at")
TIMEOUT = 10.0


def states_url(report_url: str, user: str, project: str = "") -> str:
    """Where the airlock answers ``user``'s export states (of ``project``)."""
    url = f"{report_url.rstrip('/')}/api/users/{quote(user, safe='')}/exports"
    return url + ("?" + urlencode({"project": project}) if project else "")


def pick(rows, project: str = "") -> list[dict] | None:
    """The panel's fields of the airlock's rows (of ``project``), or None when ``rows`` is not a list of them."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("request_id"), str)
                                             for r in rows):
        return None
    return [{k: r.get(k) for k in FIELDS} for r in rows if not project or r.get("project") == project]


async def owner_states(cfg) -> tuple[int, dict]:
    """(HTTP status, body) of the route for the gateway's owner (``cfg``: its ``GatewayConfig``)."""
    if not (cfg.report_url and cfg.report_token):
        return 503, {"reason": "the export airlock is not configured for this workspace"}
    client = httpclient.AsyncHTTPClient(force_instance=True)
    try:
        resp = await client.fetch(states_url(cfg.report_url, cfg.user, cfg.project), raise_error=False,
                                  headers={"Authorization": f"token {cfg.report_token}", "Accept": "application/json"},
                                  request_timeout=TIMEOUT, connect_timeout=TIMEOUT)
    except Exception as e:  # noqa: BLE001 - any failure to ask is "unavailable", never a 500
        log.warning("export states of %s not available: %s", cfg.user, e)
        return 503, {"reason": "the export airlock cannot be reached"}
    finally:
        client.close()
    if resp.code == 599:
        return 503, {"reason": "the export airlock cannot be reached"}
    if resp.code != 200:
        log.warning("export states of %s: the airlock answered %s", cfg.user, resp.code)
        return 502, {"reason": f"the export airlock answered {resp.code}"}
    try:
        rows = pick(json.loads(resp.body or b""), cfg.project)
    except ValueError:
        rows = None
    if rows is None:
        return 502, {"reason": "the export airlock's answer is not a list of requests"}
    return 200, {"requests": rows}


class ExportStatus(web.RequestHandler):
    """The route's handler; ``hub.gateway.ExportStatusHandler`` adds the gateway's owner check
    (``_require_owner``, ``gw``)."""

    def _json(self, code: int, body: dict) -> None:
        self.clear()
        self.set_status(code)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    async def get(self):
        if not self._require_owner():
            return
        if self.request.headers.get("Authorization") or "token" in self.request.query_arguments:
            return self._json(403, {"reason": "the export states are shown to the owner's browser session only"})
        code, body = await owner_states(self.gw.cfg)
        self._json(code, body)
