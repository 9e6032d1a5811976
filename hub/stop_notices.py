"""Why the platform stopped a researcher's workspace, kept for the hub's home page.

The revocation reconciler (``hub/reconciler.py``) records a notice when it stops
a workspace because a grant was revoked or expired or a dataset invalidated; the
hub's home page (``hub/frontdoor.py``) shows the user's latest one, so that a
researcher who comes back reads what happened instead of a missing server.
One small JSON file in a folder of the platform's own (never a user's home),
rewritten atomically; notices older than ``keep_days`` are dropped.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from pathlib import Path

from insitu.clock import utcnow

log = logging.getLogger(__name__)


class StopNotices:
    def __init__(self, path: str | os.PathLike, keep_days: int = 14):
        self.path = Path(path)
        self.keep = dt.timedelta(days=keep_days)

    def _load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def record(self, user: str, reason: str, *, when: dt.datetime | None = None) -> dict:
        when = when or utcnow()
        data = {u: n for u, n in self._load().items()
                if utcnow() - dt.datetime.fromisoformat(n.get("time", "1970-01-01T00:00:00+00:00")) < self.keep}
        notice = {"time": when.isoformat(timespec="seconds"), "reason": reason,
                  "when_text": f"{when.day} {when.strftime('%B %Y, %H:%M')} UTC"}
        data[user] = notice
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".stop-notices-")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, self.path)
        return notice

    def latest(self, user: str) -> dict | None:
        n = self._load().get(user)
        if not n:
            return None
        try:
            if utcnow() - dt.datetime.fromisoformat(n["time"]) > self.keep:
                return None
        except (KeyError, ValueError):
            return None
        return n


# --------------------------------------------------------------------------
# the spawner's side: tell the workspace, then the home page, before stopping
# --------------------------------------------------------------------------

import asyncio  # noqa: E402
import secrets  # noqa: E402

from traitlets import Float, HasTraits, Unicode  # noqa: E402

NOTICE_NAME = "notice.json"


def revocation_message(row: dict) -> str:
    """A sentence for the researcher from an ``uncovered`` session row of the dataset service."""
    why = str(row.get("reason") or "a grant of this workspace is no longer in force")
    return (f"Access ended for this workspace ({why}), so the platform stops it now, as the data access "
            f"rules require. Ask for access again in the catalogue if you still need the data.")


class RevocationNoticeMixin(HasTraits):
    """Tell a workspace why it is about to be stopped (a revoked or expired grant).

    JupyterHub removes a server's proxy route *before* it calls ``stop()``, so the
    notice must come first: the revocation reconciler posts it to the hub
    (``StopNoticeHandler``), which calls ``post_notice`` here: the notice goes where
    the workspace's JupyterLab reads it (``<hub folder>/notice.json``, root's,
    read-only inside), and into the hub's record for the home page. The reconciler
    then waits ``notice_grace`` seconds (JupyterLab saves the open documents and
    says why) and stops the server."""

    notice_grace = Float(4.0, config=True,
                         help="Seconds the reconciler leaves between the notice shown in JupyterLab and the stop.")
    stop_notices_path = Unicode("", config=True,
                                help="JSON file of the latest stop notice per user, shown on the hub's home page.")

    def notice_dir(self) -> str | None:
        from hub import sandbox_fs

        rd = getattr(self, "runtime_dir", None)
        return os.path.join(rd, sandbox_fs.HUB_DIR) if rd else None

    def post_notice(self, message: str, reason: str | None = None) -> bool:
        """Record ``message`` for the home page and show it in the running JupyterLab; True when shown."""
        if self.stop_notices_path:
            try:
                StopNotices(self.stop_notices_path).record(self.user.name, message)
            except OSError as e:
                self.log.error("stop notice for %s not recorded: %s", self.user.name, e)
        folder = self.notice_dir()
        if not (folder and os.path.isdir(folder) and not os.path.islink(folder)):
            return False
        tmp = os.path.join(folder, f".{NOTICE_NAME}.{secrets.token_hex(4)}")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"id": secrets.token_hex(6), "message": message, "reason": reason}, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(folder, NOTICE_NAME))
        return True


# --------------------------------------------------------------------------
# the hub's side: POST /hub/api/insitu/stop-notice/<user> (the reconciler calls it)
# --------------------------------------------------------------------------


def stop_notice_handler():
    """The JupyterHub API handler (built lazily: jupyterhub is imported only in the hub)."""
    from jupyterhub.apihandlers.base import APIHandler
    from jupyterhub.scopes import needs_scope
    from tornado import web

    class StopNoticeHandler(APIHandler):
        @needs_scope("admin:servers")
        async def post(self, user_name):
            body = self.get_json_body() or {}
            sid, row = body.get("session_id"), body.get("session") or {}
            user = self.find_user(user_name)
            if user is None:
                raise web.HTTPError(404, "no such user")
            shown = []
            for name, spawner in user.spawners.items():
                if not hasattr(spawner, "post_notice") or not spawner.active:
                    continue
                if sid and getattr(spawner, "session_id", None) not in (None, sid):
                    continue
                if spawner.post_notice(revocation_message(row), row.get("end_reason")):
                    shown.append(name)
            grace = max((getattr(s, "notice_grace", 0) for s in user.spawners.values()), default=0)
            self.finish({"shown": shown, "grace": grace if shown else 0})

    return StopNoticeHandler


STOP_NOTICE_ROUTE = r"/api/insitu/stop-notice/([^/]+)"


async def post_stop_notice(hub, user: str, session_id: str, session: dict) -> float:
    """The reconciler's side: tell the user's running JupyterLab why it is about to stop (before
    JupyterHub removes the proxy route), then wait the grace the hub answers. ``hub`` is a
    :class:`insitu.hubapi.HubAPI`. Never raises: the stop goes on without a notice."""
    from urllib.parse import quote

    try:
        r = await hub.request("POST", f"/insitu/stop-notice/{quote(user, safe='')}",
                              json={"session_id": session_id, "session": session})
        grace = float(r.json().get("grace", 0)) if r.status_code == 200 else 0.0
    except Exception as e:  # noqa: BLE001 - the stop must go on, with or without the notice
        log.warning("stop notice for %s not delivered: %s", user, e)
        return 0.0
    if grace:
        await asyncio.sleep(min(grace, 30.0))
    return grace
