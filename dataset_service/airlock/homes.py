"""Where an export's files come from: the requester's workspace homes (``<homes_root>/<login>/<project>``:
one home per user and project), the workspace sessions that name the datasets, and the export drafts that
``python -m hub.workspace.export`` writes in a home (listed, submitted, discarded; a draft is the
researcher's own file, read and removed without following links).

``Homes`` is part of :class:`~.service.Airlock` (which supplies ``settings`` and ``submit``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from insitu.clock import aware
from insitu.identity import Identity

from ..governance.models import WorkSession
from .models import ExportRequest
from .store import RefusedFile, list_home, read_small_from_home, remove_from_home

_SAFE_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_DRAFT_NAME = re.compile(r"^[0-9a-f]{8,64}\.json$")
DRAFT_DIR = ".insitu/exports"
DRAFT_FORMAT = "insitu-export-draft/1"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class AirlockError(Exception):
    """A refused step: ``status`` (4xx) and a reason for the caller."""

    def __init__(self, status: int, reason: Any):
        super().__init__(str(reason))
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class SessionLink:
    session_id: str
    project: str
    dataset_ids: tuple[str, ...]


class Homes:
    def home_of(self, login: str, project: str | None) -> Path:
        """The workspace home of ``login`` in ``project`` (``<homes_root>/<login>/<project>``)."""
        if not _SAFE_USER.fullmatch(login) or login in (".", ".."):
            raise AirlockError(400, f"no home folder can be derived for the login {login!r}")
        if not project or not _SAFE_ID.fullmatch(project):
            raise AirlockError(400, "name the project (or the workspace session) whose home holds the files")
        return self.settings.homes_root / login / project

    def home_for(self, who: Identity, project: str | None, link: SessionLink | None) -> Path:
        """The home a request's files come from: the named project's, else the session's project's,
        else the only project's of a member of one project."""
        only = sorted(who.projects)[0] if len(who.projects) == 1 else None
        return self.home_of(who.name, project or (link.project if link else None) or only)

    def project_homes(self, login: str) -> list[tuple[str, Path]]:
        """(project, home) of every project home of ``login`` (folders only, never a symlink)."""
        base = self.home_of(login, "x").parent
        try:
            names = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
        except OSError:
            return []
        return [(n, base / n) for n in names if _SAFE_ID.fullmatch(n)]

    # ------------------------------------------------------------------ sessions
    def _session_link(self, s: Session, login: str, session_id: str | None) -> SessionLink | None:
        """The workspace session the files come from (the requester's own), for the traces."""
        if session_id:
            if not _SAFE_ID.fullmatch(session_id):
                raise AirlockError(400, "malformed session id")
            ws = s.get(WorkSession, session_id)
            if ws is None or ws.user != login:
                raise AirlockError(400, f"session {session_id!r} is not one of your workspace sessions")
        else:
            ws = s.scalars(select(WorkSession).where(WorkSession.user == login)
                           .order_by(WorkSession.opened_at.desc()).limit(1)).first()
            if ws is None:
                return None
        return SessionLink(ws.id, ws.project, tuple(sorted(d.dataset_id for d in ws.datasets)))

    def sessions_of(self, s: Session, login: str, limit: int = 20) -> list[dict]:
        rows = s.scalars(select(WorkSession).where(WorkSession.user == login)
                         .order_by(WorkSession.opened_at.desc()).limit(limit)).all()
        return [{"session_id": w.id, "project": w.project, "opened_at": aware(w.opened_at), "open": w.closed_at is None,
                 "dataset_ids": sorted(d.dataset_id for d in w.datasets)} for w in rows]

    # ------------------------------------------------------------------ drafts
    def drafts(self, s: Session, login: str) -> list[dict]:
        """Export drafts written by ``python -m hub.workspace.export`` in the home, not yet submitted."""
        used = set(s.scalars(select(ExportRequest.draft_id).where(ExportRequest.requester == login,
                                                                  ExportRequest.draft_id.is_not(None))).all())
        out = []
        for project, home in self.project_homes(login):
            folder = home / DRAFT_DIR
            if any(p.is_symlink() for p in (folder.parent, folder)) or not folder.is_dir():
                continue
            for name, _size in list_home(folder, max_entries=200, max_depth=1):
                if not _DRAFT_NAME.fullmatch(name) or name[:-5] in used:
                    continue
                try:
                    d = self.parse_draft(read_small_from_home(home, f"{DRAFT_DIR}/{name}"), name[:-5])
                except (RefusedFile, AirlockError):
                    continue
                out.append({**d, "project": project})
        return sorted(out, key=lambda d: d.get("created_at") or "", reverse=True)

    @staticmethod
    def parse_draft(raw: bytes, draft_id: str) -> dict:
        try:
            d = json.loads(raw)
        except ValueError:
            raise AirlockError(400, "the export draft is not valid JSON")
        ok = (isinstance(d, dict) and d.get("format") == DRAFT_FORMAT and d.get("id") == draft_id
              and isinstance(d.get("files"), list) and isinstance(d.get("justification"), str)
              and all(isinstance(f, dict) and isinstance(f.get("name"), str)
                      and isinstance(f.get("sha256"), str) for f in d["files"]))
        if not ok:
            raise AirlockError(400, "the export draft is malformed")
        sid = d.get("session_id")
        return {"draft_id": draft_id, "created_at": str(d.get("created_at") or ""),
                "session_id": sid if isinstance(sid, str) and sid else None,
                "justification": d["justification"],
                "files": [{"name": f["name"], "sha256": f["sha256"], "size": f.get("size")} for f in d["files"]]}

    def discard_draft(self, who: Identity, draft_id: str) -> None:
        """Remove a workspace draft from the home it lies in (the researcher's own file; nothing is traced)."""
        if who.is_service or not who.has_role("researchers"):
            raise AirlockError(403, "only researchers have export drafts")
        if not re.fullmatch(r"[0-9a-f]{8,64}", draft_id or ""):
            raise AirlockError(400, "malformed draft id")
        for _project, home in self.project_homes(who.name):
            try:
                read_small_from_home(home, f"{DRAFT_DIR}/{draft_id}.json")
            except RefusedFile:
                continue
            try:
                remove_from_home(home, f"{DRAFT_DIR}/{draft_id}.json")
            except RefusedFile as e:
                raise AirlockError(409, f"the draft cannot be removed: {e.reason}")
            return
        raise AirlockError(404, "no such export draft in your homes")

    def submit_draft(self, s: Session, who: Identity, draft_id: str) -> ExportRequest:
        if not re.fullmatch(r"[0-9a-f]{8,64}", draft_id or ""):
            raise AirlockError(400, "malformed draft id")
        if s.scalars(select(ExportRequest.id).where(ExportRequest.requester == who.name,
                                                    ExportRequest.draft_id == draft_id)).first():
            raise AirlockError(409, "this draft has already been submitted")
        raw, reason = None, "no project home"
        for project, home in self.project_homes(who.name):  # the draft lies in the home of its project
            try:
                raw = read_small_from_home(home, f"{DRAFT_DIR}/{draft_id}.json")
                break
            except RefusedFile as e:
                reason = e.reason
        if raw is None:
            raise AirlockError(404, f"no such export draft in your homes ({reason})")
        d = self.parse_draft(raw, draft_id)
        return self.submit(s, who, files=[f["name"] for f in d["files"]], justification=d["justification"],
                           project=project, session_id=d["session_id"],
                           expected={f["name"]: f["sha256"] for f in d["files"]}, draft_id=draft_id)
