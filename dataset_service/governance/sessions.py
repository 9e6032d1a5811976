"""Workspace sessions under governance: a session opens only on datasets that grants in force cover
(``open_session``, USE_DATASETS traced first), closes with the reason it ended (END_SESSION /
START_FAILED), records the gateway's refused downloads (REFUSE_DOWNLOAD), and ``uncovered_sessions``
lists the open sessions that a revoked or expired grant or an invalidated dataset no longer covers.

``WorkspaceSessions`` is part of :class:`~.service.Governance` (which supplies ``tracing``, ``directory``,
``now``, ``grants_in_force``, ``grant_status``, ``_tell`` and the folders).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from insitu.clock import aware
from insitu.trace import Action

from ..models import Dataset
from . import rules
from .models import Grant, SessionDataset, WorkSession
from .rules import RuleViolation


@dataclass
class Refusal:
    dataset_id: str
    reason: str


class SessionRefusedError(Exception):
    def __init__(self, reason: str, refused: list[Refusal]):
        super().__init__(reason)
        self.reason = reason
        self.refused = refused

    def detail(self) -> dict:
        return {"reason": self.reason, "refused": [{"dataset_id": r.dataset_id, "reason": r.reason}
                                                   for r in self.refused]}


def dataset_state(d: Dataset) -> str:
    st = d.state
    return st.value if hasattr(st, "value") else str(st)


class WorkspaceSessions:
    def open_session(self, s: Session, *, user: str, project: str, dataset_ids: list[str], profile: str,
                     opened_by: str) -> WorkSession:
        if not dataset_ids:
            raise RuleViolation("at least one dataset id is required", 422)
        if len(set(dataset_ids)) != len(dataset_ids):
            raise RuleViolation("a dataset id is listed twice", 422)
        groups = self.directory.groups_of(user)
        if groups is None:
            raise SessionRefusedError(f"the hub does not know the user {user!r}",
                                      [Refusal(d, "unknown user") for d in dataset_ids])
        if f"project-{project}" not in groups:
            raise SessionRefusedError(f"{user!r} is not a member of project {project!r}",
                                      [Refusal(d, "user not in project") for d in dataset_ids])
        refused: list[Refusal] = []
        chosen: dict[str, tuple[Grant, Dataset]] = {}
        in_force = {}
        for g, d in self.grants_in_force(s, projects=[project], dataset_ids=dataset_ids):
            in_force.setdefault(d.id, (g, d))
        for ds_id in dataset_ids:
            if ds_id in in_force:
                chosen[ds_id] = in_force[ds_id]
                continue
            refused.append(Refusal(ds_id, self._why_not_covered(s, ds_id, project)))
        if refused:
            raise SessionRefusedError("not every dataset is covered by a grant in force", refused)
        sid = str(uuid.uuid4())
        session = WorkSession(id=sid, user=user, project=project, profile=profile or "", opened_at=self.now())
        for ds_id in dataset_ids:
            g, d = chosen[ds_id]
            session.datasets.append(SessionDataset(dataset_id=ds_id, grant_id=g.id, manifest_root=d.merkle_root or ""))
        s.add(session)
        s.flush()
        self.tracing.send(Action.USE_DATASETS, user=user, key=f"session:{sid}", dataset_ids=dataset_ids,
                          digests={ds_id: chosen[ds_id][1].merkle_root or "" for ds_id in dataset_ids},
                          details={"session_id": sid, "project": project, "profile": profile or "",
                                   "grant_ids": [chosen[d][0].id for d in dataset_ids]})
        return session

    def _why_not_covered(self, s: Session, dataset_id: str, project: str) -> str:
        d = s.get(Dataset, dataset_id)
        if d is None:
            return "no such dataset"
        state = dataset_state(d)
        if state not in rules.REQUESTABLE_DATASET_STATES:
            return f"the dataset is {state}"
        grants = s.scalars(select(Grant).where(Grant.dataset_id == dataset_id, Grant.project == project)
                           .order_by(Grant.valid_until.desc())).all()
        if not grants:
            return f"project {project!r} holds no grant for this dataset"
        statuses = [self.grant_status(g, state) for g in grants]
        if "revoked" in statuses and "expired" not in statuses:
            return "the grant was revoked"
        if "expired" in statuses:
            return "the grant has expired"
        return f"the grant is {statuses[0]}"

    def session_view(self, session: WorkSession, s: Session) -> dict:
        out = {"session_id": session.id, "user": session.user, "project": session.project,
               "profile": session.profile, "lake_dir": str(self.lake_dir), "lake_mount_path": self.lake_mount_path,
               "opened_at": aware(session.opened_at).isoformat(),
               "closed_at": aware(session.closed_at).isoformat() if session.closed_at else None,
               "open": session.closed_at is None, "datasets": []}
        for sd in session.datasets:
            d = s.get(Dataset, sd.dataset_id)
            g = s.get(Grant, sd.grant_id) if sd.grant_id else None
            out["datasets"].append({"dataset_id": sd.dataset_id, "gid": d.gid if d else None,
                                    "path": str(self.datasets_dir / sd.dataset_id),
                                    "manifest_root": sd.manifest_root, "grant_id": sd.grant_id,
                                    "name": d.name if d else "", "version": d.version if d else None,
                                    "expires_at": aware(g.valid_until).isoformat() if g else None})
        return out

    def close_session(self, s: Session, session_id: str, *, actor: str, reason: str = "stopped") -> WorkSession:
        """Close a session; trace END_SESSION with why it ended, or START_FAILED when it never started."""
        if reason not in rules.END_REASONS:
            raise RuleViolation(f"unknown end reason {reason[:32]!r}; one of {', '.join(rules.END_REASONS)}", 422)
        s.execute(update(WorkSession).where(WorkSession.id == session_id).values(user=WorkSession.user))
        session = s.scalars(select(WorkSession).where(WorkSession.id == session_id).with_for_update()).first()
        if session is None:
            raise RuleViolation("no such session", 404)
        if session.closed_at is not None:
            return session
        session.closed_at = self.now()
        session.closed_by = actor
        session.end_reason = reason
        s.flush()
        action = Action.START_FAILED if reason == "failed_start" else Action.END_SESSION
        self.tracing.send(action, user=session.user, key=f"session:{session.id}",
                          dataset_ids=[d.dataset_id for d in session.datasets],
                          details={"session_id": session.id, "project": session.project, "reason": reason})
        if reason in ("revoked", "invalidated", "expired"):
            why = {"revoked": "a grant it used was revoked", "invalidated": "a dataset it used was invalidated",
                   "expired": "a grant it used expired"}[reason]
            self._tell(s, lambda: [session.user], "workspace-stopped", "Your workspace was stopped",
                       f"Your workspace for project {session.project} was stopped because {why}. Files in your "
                       "home are kept.", "/my/grants")
        return session

    def record_refusal(self, s: Session, session_id: str, *, kind: str, channel: str, path_digest: str) -> None:
        """The workspace gateway refused a download in this session: trace it (the path only as a digest)."""
        session = s.get(WorkSession, session_id)
        if session is None:
            raise RuleViolation("no such session", 404)
        self.tracing.send(Action.REFUSE_DOWNLOAD, user=session.user, key=f"refusal:{session.id}",
                          dataset_ids=[d.dataset_id for d in session.datasets],
                          details={"session_id": session.id, "project": session.project, "kind": kind,
                                   "channel": channel, "path_digest": path_digest})

    def uncovered_sessions(self, s: Session) -> list[dict]:
        out = []
        for session in s.scalars(select(WorkSession).where(WorkSession.closed_at.is_(None))
                                 .order_by(WorkSession.opened_at)):
            reasons = []
            codes = []
            for sd in session.datasets:
                status = self.grant_status(sd.grant)
                if status != "active":
                    # another grant of the same project may still cover the dataset
                    if self.grants_in_force(s, projects=[session.project], dataset_ids=[sd.dataset_id]):
                        continue
                    reasons.append(f"{_dataset_label(s, sd.dataset_id)}: {_status_words(status)}")
                    codes.append(rules.end_reason_of(status))
            if reasons:
                out.append({"session_id": session.id, "user": session.user, "project": session.project,
                            "dataset_ids": [d.dataset_id for d in session.datasets], "reason": "; ".join(reasons),
                            "end_reason": codes[0]})
        return out


def _dataset_label(s: Session, dataset_id: str) -> str:
    """What a researcher reads for a dataset: its name and version, then its id (the id alone if unknown)."""
    d = s.get(Dataset, dataset_id)
    return f"{d.name} v{d.version} ({dataset_id})" if d is not None and d.name else dataset_id


def _status_words(status: str) -> str:
    return {"revoked": "grant revoked", "expired": "grant expired",
            "not-yet-valid": "grant not yet valid"}.get(status, status.replace("dataset-", "dataset "))
