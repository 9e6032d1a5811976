"""The export airlock's rules: submit, review, see, download.

Rules (each has a test that tries to break it)
- Only a user with the ``researchers`` role submits, and only files from their
  own home of the project the request is for (``<homes_root>/<login>/<project>``:
  one home per user and project, as the workspaces have them); the files are frozen into the store at
  that moment and the review, the findings and any download use the frozen
  copy only.
- A reviewer holds one of ``reviewer_roles`` and is never the requester; one
  review per reviewer; reviews only while the request is pending.
- ``quorum`` approvals of distinct reviewers release a request; one rejection
  rejects it; one "return for changes" returns it (terminal: the researcher
  files a new request that names the old one in ``replaces``). Who may review
  and what the reviews decide is the platform's one review rule
  (``insitu/review.py``, shared with access governance).
- Files leave only from an ``approved`` request and only to its requester;
  nobody else (reviewers, auditors, admins, services) downloads anything.
- Reviewers see previews (tables, text, downscaled images); the requester and
  auditors see names, sizes, digests, findings and decisions, never content.
- Every step is traced before it is committed (``tracing.py``).

Where files come from (the homes, the workspace sessions, the drafts a workspace writes) is
``homes.py``, which :class:`Airlock` inherits.
"""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from insitu.clock import aware
from insitu.identity import Identity
from insitu.review import Ballot, Refusal, counts, outcome, refusal
from insitu.trace import Action

from ..models import Series
from ..notifications.models import Notification
from .findings import inspect_file
from .models import ExportFile, ExportRequest, ExportReview, utcnow
from .states import (DECISIONS, FILE_DECISIONS, OUTCOME, TRACE_ACTION, Decision, ExportState, FileDecision,
                     TransitionRefused, check_transition, from_files, required_approvals)
from .settings import AirlockSettings
from .store import FrozenStore, RefusedFile, check_name
from .homes import AirlockError, Homes  # noqa: F401  (AirlockError: the service's error)
from .tracing import ExportTracing

def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ballots(req: ExportRequest) -> list[Ballot]:
    """The request's reviews for the review rule (one round: a returned request is followed by a new one)."""
    return [Ballot(r.reviewer, r.decision) for r in req.reviews]


class Airlock(Homes):
    def __init__(self, settings: AirlockSettings, store: FrozenStore, tracing: ExportTracing):
        self.settings = settings
        self.store = store
        self.tracing = tracing

    # ------------------------------------------------------------------ who
    def is_reviewer(self, who: Identity) -> bool:
        return not who.is_service and who.has_role(*self.settings.reviewer_roles)

    def can_review(self, who: Identity, req: ExportRequest) -> bool:
        return self.is_reviewer(who) and who.name != req.requester

    def can_see(self, who: Identity, req: ExportRequest) -> bool:
        if who.is_service:
            return False
        return who.name == req.requester or self.is_reviewer(who) or who.has_role("auditors")

    def can_download(self, who: Identity, req: ExportRequest) -> bool:
        return (not who.is_service) and who.name == req.requester and req.state == ExportState.approved.value

    # ------------------------------------------------------------------ submit
    def submit(self, s: Session, who: Identity, *, files: Iterable[str], justification: str,
               project: str | None = None, session_id: str | None = None,
               replaces: str | None = None, expected: dict[str, str] | None = None,
               draft_id: str | None = None) -> ExportRequest:
        if who.is_service or not who.has_role("researchers"):
            raise AirlockError(403, "only researchers ask for exports, from their own workspace home")
        names = list(files)
        justification = (justification or "").strip()
        if not names:
            raise AirlockError(422, "name at least one file")
        if len(names) > self.settings.max_files:
            raise AirlockError(422, f"{len(names)} files: at most {self.settings.max_files} in one request")
        if len(set(names)) != len(names):
            raise AirlockError(422, "a file is named twice")
        if len(justification) < 10:
            raise AirlockError(422, "explain in a justification (10 characters or more) what the files are and why "
                                    "they must leave")
        if len(justification) > self.settings.max_justification:
            raise AirlockError(422, f"justification longer than {self.settings.max_justification} characters")
        refused = []
        for n in names:
            try:
                check_name(n)
            except RefusedFile as e:
                refused.append({"file": e.name, "reason": e.reason})
        if refused:
            raise AirlockError(400, {"reason": "some files cannot be exported", "refused": refused})
        link = self._session_link(s, who.name, session_id)
        if project is not None and project not in who.projects and not who.is_admin:
            raise AirlockError(403, f"you are not a member of project {project!r}")
        if link and project and link.project != project:
            raise AirlockError(400, f"session {link.session_id!r} belongs to project {link.project!r}")
        if replaces is not None:
            old = s.get(ExportRequest, replaces)
            if old is None or old.requester != who.name:
                raise AirlockError(400, f"{replaces!r} is not one of your export requests")
            if old.state != ExportState.returned.value:
                raise AirlockError(409, "only a request returned for changes can be replaced")

        home = self.home_for(who, project, link)
        frozen = []
        total = 0
        for n in names:  # copy now: later changes in the workspace change nothing here
            try:
                f = self.store.freeze_from_home(home, n, max_size=self.settings.max_file_size)
            except RefusedFile as e:
                refused.append({"file": e.name, "reason": e.reason})
                continue
            total += f.size
            frozen.append(f)
        for f in frozen:
            if expected is not None and expected.get(f.name) != f.sha256:
                refused.append({"file": f.name, "reason": "the file changed after the export command named it: "
                                                          "run the command again"})
        if refused:
            raise AirlockError(400, {"reason": "some files cannot be exported", "refused": refused})
        if total > self.settings.max_request_size:
            raise AirlockError(400, f"{total} bytes in all, above the limit of {self.settings.max_request_size}")

        req = ExportRequest(
            id=str(uuid.uuid4()), requester=who.name, project=project or (link.project if link else None),
            session_id=link.session_id if link else None, dataset_ids=list(link.dataset_ids) if link else [],
            justification=justification, state=ExportState.pending.value, quorum=self.settings.quorum,
            total_size=total, replaces_id=replaces, draft_id=draft_id, created_at=utcnow(),
        )
        limits = self.settings.limits(self.lake_min_slices(s))
        for i, f in enumerate(frozen):
            report = inspect_file(self.store.path_of(f.sha256), f.name, limits)
            req.files.append(ExportFile(position=i, name=f.name, sha256=f.sha256, size=f.size, kind=report.kind,
                                        severity=report.severity, findings=[x.to_dict() for x in report.findings],
                                        preview=report.preview))
        # a High finding anywhere: independent reviewers (states.required_approvals)
        req.quorum = required_approvals(self.settings.quorum, self.settings.high_quorum,
                                        [f.severity for f in req.files])
        s.add(req)
        s.flush()
        self.tracing.send(
            Action.REQUEST_EXPORT, user=who.name, key=req.id, dataset_ids=req.dataset_ids,
            digests={f.name: f.sha256 for f in req.files},
            details=self._details(req, n_files=len(req.files), total_size=total,
                                  justification_sha256=_sha(justification),
                                  findings=sorted({x["code"] for f in req.files for x in f.findings}),
                                  replaces=replaces),
        )
        return req

    @staticmethod
    def lake_min_slices(s: Session) -> int | None:
        """The fewest files (slices) of a catalogued series holding two or more: what a volume of this lake is."""
        return s.scalar(select(func.min(Series.n_files)).where(Series.n_files >= 2))

    def _details(self, req: ExportRequest, **extra) -> dict:
        d = {"request_id": req.id, "session_id": req.session_id, "project": req.project}
        d.update({k: v for k, v in extra.items()})
        return d

    # ------------------------------------------------------------------ review
    def load(self, s: Session, request_id: str, *, lock: bool = False) -> ExportRequest:
        try:
            uuid.UUID(request_id)
        except (ValueError, TypeError):
            raise AirlockError(404, "no such export request")
        q = select(ExportRequest).where(ExportRequest.id == request_id)
        if lock:
            q = q.with_for_update()
        req = s.scalars(q).first()
        if req is None:
            raise AirlockError(404, "no such export request")
        return req

    def review(self, s: Session, request_id: str, who: Identity, *, decision: str | None = None, reason: str = "",
               files: dict[int, tuple[str, str]] | None = None) -> ExportRequest:
        """One reviewer's review: a ``decision`` on the whole request, or ``files`` (file id -> (approve|reject,
        comment)) deciding every file, from which the decision follows (``states.from_files``)."""
        req = self.load(s, request_id, lock=True)
        if files is None and decision not in DECISIONS:
            raise AirlockError(400, f"decision must be one of {', '.join(DECISIONS)}")
        if not self.is_reviewer(who):
            raise AirlockError(403, f"only {', '.join(self.settings.reviewer_roles)} review export requests")
        why = refusal(who.name, requester=req.requester, ballots=_ballots(req))
        if why is Refusal.own:
            raise AirlockError(403, "you cannot review your own export request")
        try:
            check_transition(req.state, ExportState.approved.value)
        except TransitionRefused as e:
            raise AirlockError(409, str(e))
        if why is Refusal.again:
            raise AirlockError(409, "you have already reviewed this request")
        reason = (reason or "").strip()
        per_file = self._file_decisions(req, files) if files is not None else None
        if per_file is not None:
            derived = from_files([d["decision"] for d in per_file]).value
            if decision and decision != derived:
                raise AirlockError(422, f"the file decisions make this review '{derived}', not '{decision}'")
            decision = derived
            if not reason and decision != Decision.approve.value:
                names = {f.id: f.name for f in req.files}
                reason = "; ".join(f"{names[d['file_id']]}: {d['comment']}" for d in per_file
                                   if d["decision"] == FileDecision.reject.value)
        if decision not in DECISIONS:
            raise AirlockError(400, f"decision must be one of {', '.join(DECISIONS)}")
        if decision in ("reject", "return") and len(reason) < 3:
            raise AirlockError(422, "give a reason when rejecting or returning a request")
        if len(reason) > 4000:
            raise AirlockError(422, "reason longer than 4000 characters")
        now = utcnow()
        req.reviews.append(ExportReview(reviewer=who.name, decision=decision, reason=reason[:4000], at=now,
                                        file_decisions=per_file))
        ballots = _ballots(req)
        approvals = counts(ballots)[Decision.approve.value]
        decided = outcome(ballots, {Decision.reject.value: 1, Decision.return_.value: 1,
                                    Decision.approve.value: req.quorum})
        target = OUTCOME[Decision(decided)] if decided else None
        if target is not None:
            check_transition(req.state, target.value)
            req.state, req.decided_at = target.value, now
            if target != ExportState.approved:
                req.decision_reason = reason
        s.flush()
        digests = {f.name: f.sha256 for f in req.files}
        common = dict(requester=self.tracing.pseudonym(req.requester), approvals=approvals, quorum=req.quorum,
                      state=req.state)
        if per_file is not None:  # which files each reviewer let through, by digest (comments stay here)
            by_id = {f.id: f for f in req.files}
            common["files_approved"] = sorted(by_id[d["file_id"]].sha256 for d in per_file
                                              if d["decision"] == FileDecision.approve.value)
        if decision == Decision.approve.value:
            self.tracing.send(TRACE_ACTION[Decision.approve], user=who.name, key=f"{req.id}:{who.name}",
                              dataset_ids=req.dataset_ids, digests=digests,
                              details=self._details(req, released=req.state == ExportState.approved.value, **common))
        else:
            self.tracing.send(TRACE_ACTION[Decision(decision)], user=who.name, key=f"{req.id}:{who.name}",
                              dataset_ids=req.dataset_ids, digests=digests,
                              details=self._details(req, outcome=req.state, reason_sha256=_sha(reason), **common))
        if req.state != ExportState.pending.value:  # the requester is told (in-app and e-mail)
            words = {"approved": "approved: the files can be downloaded", "rejected": "rejected",
                     "returned": "returned for changes"}[req.state]
            s.add(Notification(user=req.requester, kind="export-reviewed", title=f"Export request {words}",
                               body=(f"{who.name}: {reason}" if reason else "")[:4000],
                               link=f"/exports/{req.id}"))
        return req

    @staticmethod
    def _file_decisions(req: ExportRequest, files: dict[int, tuple[str, str]]) -> list[dict]:
        ids = {f.id for f in req.files}
        unknown = sorted(set(files) - ids)
        if unknown:
            raise AirlockError(422, f"file(s) {', '.join(map(str, unknown))} are not in this request")
        missing = [f.name for f in req.files if f.id not in files]
        if missing:
            raise AirlockError(422, "decide every file: no decision for " + ", ".join(missing[:10]))
        out = []
        for f in req.files:
            d, comment = files[f.id]
            comment = (comment or "").strip()
            if d not in FILE_DECISIONS:
                raise AirlockError(422, f"{f.name}: decide approve or reject")
            if d == FileDecision.reject.value and len(comment) < 3:
                raise AirlockError(422, f"{f.name}: say why it cannot leave (a comment of 3 characters or more)")
            if len(comment) > 2000:
                raise AirlockError(422, f"{f.name}: comment longer than 2000 characters")
            out.append({"file_id": f.id, "decision": d, "comment": comment})
        return out

    # ------------------------------------------------------------------ ask again after a return
    def ask_again(self, s: Session, who: Identity, request_id: str) -> dict:
        """What a new request that replaces a returned one starts from: its files, justification, session,
        and what the reviewers said (per file and overall)."""
        old = self.load(s, request_id)
        if old.requester != who.name:
            raise AirlockError(404, "no such export request of yours")
        if old.state != ExportState.returned.value:
            raise AirlockError(409, f"only a request returned for changes can be asked again (this one is {old.state})")
        names = {f.id: f.name for f in old.files}
        said = []
        for r in old.reviews:
            said.append({"reviewer": r.reviewer, "decision": r.decision, "reason": r.reason,
                         "files": [{"name": names.get(d["file_id"], "?"), "decision": d["decision"],
                                    "comment": d.get("comment", "")} for d in (r.file_decisions or [])]})
        rejected = {d["name"] for x in said for d in x["files"] if d["decision"] == FileDecision.reject.value}
        return {"request_id": old.id, "files": [f.name for f in old.files if f.name not in rejected],
                "justification": old.justification, "session_id": old.session_id, "project": old.project,
                "said": said}

    def changes_since_replaced(self, s: Session, req: ExportRequest) -> dict | None:
        """For the reviewer of a request that replaces a returned one: files added, removed, changed, kept."""
        old = s.get(ExportRequest, req.replaces_id) if req.replaces_id else None
        if old is None:
            return None
        before = {f.name: f.sha256 for f in old.files}
        now = {f.name: f.sha256 for f in req.files}
        files = []
        for name in sorted(set(before) | set(now)):
            status = ("added" if name not in before else "removed" if name not in now
                      else "changed" if before[name] != now[name] else "same")
            files.append({"name": name, "status": status})
        return {"request_id": old.id, "files": files, "justification_before": old.justification,
                "reason": old.decision_reason or ""}

    # ------------------------------------------------------------------ download
    def open_for_download(self, s: Session, request_id: str, file_id: int, who: Identity) -> tuple[ExportFile, Path]:
        req = self.load(s, request_id)
        if not self.can_download(who, req):
            if who.name == req.requester and not who.is_service:
                raise AirlockError(403, f"the request is {req.state}: only approved files can be downloaded")
            raise AirlockError(403, "only the requester downloads the files of an approved request")
        f = next((x for x in req.files if x.id == file_id), None)
        if f is None:
            raise AirlockError(404, "no such file in this request")
        path = self.store.path_of(f.sha256)
        if not self.store.verify(f.sha256):
            raise AirlockError(409, "the stored copy no longer matches its digest: ask a data manager")
        self.tracing.send(Action.DOWNLOAD_EXPORT, user=who.name, key=f"{req.id}:{f.id}:{uuid.uuid4()}",
                          dataset_ids=req.dataset_ids, digests={f.name: f.sha256},
                          details=self._details(req, file_id=f.id, size=f.size))
        return f, path

    def preview_path(self, s: Session, request_id: str, file_id: int, who: Identity) -> tuple[ExportFile, Path]:
        req = self.load(s, request_id)
        if not self.can_review(who, req):
            raise AirlockError(403, "previews are shown to reviewers only")
        f = next((x for x in req.files if x.id == file_id), None)
        if f is None:
            raise AirlockError(404, "no such file in this request")
        if f.kind not in ("image", "array"):
            raise AirlockError(404, "no image preview for this file")
        return f, self.store.path_of(f.sha256)

    # ------------------------------------------------------------------ views
    def listing(self, s: Session, who: Identity, *, state: ExportState | None = None, mine: bool = False,
                limit: int = 200) -> list[ExportRequest]:
        q = select(ExportRequest).order_by(ExportRequest.created_at.desc()).limit(limit)
        if state:
            q = q.where(ExportRequest.state == ExportState(state).value)
        if mine or not (self.is_reviewer(who) or who.has_role("auditors")):
            q = q.where(ExportRequest.requester == who.name)
        return list(s.scalars(q).all())

    def view(self, req: ExportRequest, who: Identity) -> dict:
        reviewer = self.can_review(who, req)
        download = self.can_download(who, req)
        return {
            "request_id": req.id,
            "requester": req.requester,
            "project": req.project,
            "session_id": req.session_id,
            "dataset_ids": list(req.dataset_ids or []),
            "justification": req.justification,
            "state": req.state,
            "quorum": req.quorum,
            "approvals": counts(_ballots(req))[Decision.approve.value],
            "total_size": req.total_size,
            "replaces": req.replaces_id,
            "draft_id": req.draft_id,  # the workspace draft it came from: JupyterLab's exports panel follows it
            "created_at": aware(req.created_at),
            "decided_at": aware(req.decided_at),
            "decision_reason": req.decision_reason,
            "can_review": reviewer and req.state == ExportState.pending.value and all(r.reviewer != who.name for r in req.reviews),
            "files": [
                {
                    "file_id": f.id, "name": f.name, "sha256": f.sha256, "size": f.size, "kind": f.kind,
                    "severity": f.severity, "findings": f.findings,
                    **({"preview": f.preview} if reviewer and f.preview else {}),
                    "decisions": [{"reviewer": r.reviewer, **d} for r in req.reviews for d in (r.file_decisions or [])
                                  if d.get("file_id") == f.id],
                    **({"download": True} if download else {}),
                }
                for f in req.files
            ],
            "reviews": [{"reviewer": r.reviewer, "decision": r.decision, "reason": r.reason, "at": aware(r.at),
                         "files": r.file_decisions or []} for r in req.reviews],
            "high": any(f.severity == "high" for f in req.files),
        }
