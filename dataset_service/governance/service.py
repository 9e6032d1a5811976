"""Governance operations on the database: the rules of ``rules.py`` applied to
records, each step traced before it is committed.

Every method takes the caller's SQLAlchemy session (the caller commits) and
raises :class:`~.rules.RuleViolation` (a 4xx, nothing changed),
:class:`~.tracing.TraceFailed` or ``HubUnavailable`` (a 503, nothing changed:
the caller's transaction rolls back).

Access requests, votes and grants are here; the workspace sessions that grants
cover (open, close, refusals, sessions no grant covers any more) are in
``sessions.py``, which :class:`Governance` inherits.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from insitu.trace import Action
from insitu.clock import aware, utcnow

from ..models import Dataset
from . import rules
from .directory import HubDirectory
from .models import AccessRequest, Grant, RequestEvent, RequestRound, Vote
from .rules import Decision, Policy, RequestState, RuleViolation, VoteRecord
from .sessions import Refusal, SessionRefusedError, WorkspaceSessions, dataset_state  # noqa: F401  (re-exported)
from .tracing import Tracing


@dataclass
class Governance(WorkspaceSessions):
    policy: Policy
    tracing: Tracing
    directory: HubDirectory
    datasets_dir: Path
    lake_dir: Path
    lake_mount_path: str
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    notifier: object | None = None  # notifications.service.Notifier: who is told what, in the same transaction

    # --- helpers ------------------------------------------------------------
    def now(self) -> dt.datetime:
        return self.clock()

    def _tell(self, s: Session, users_fn, kind: str, title: str, body: str, link: str) -> None:
        if self.notifier is not None:
            self.notifier.safe(s, users_fn, kind, title, body, link)

    @staticmethod
    def _ds_name(s: Session, dataset_id: str) -> str:
        d = s.get(Dataset, dataset_id)
        return f"{d.name} v{d.version}" if d else dataset_id

    @staticmethod
    def _event(req: AccessRequest, actor: str, action: str, detail: str = "", at: dt.datetime | None = None):
        req.events.append(RequestEvent(actor=actor, action=action, detail=detail, at=at or utcnow()))

    def _load_request(self, s: Session, request_id: int) -> AccessRequest:
        # Take the write lock before reading: a no-op UPDATE locks the row on PostgreSQL and takes
        # SQLite's database write lock, so concurrent reviews of one request run one after the other
        # and each sees the votes committed before it (two simultaneous approvals reach the quorum).
        s.execute(update(AccessRequest).where(AccessRequest.id == request_id).values(round=AccessRequest.round))
        req = s.scalars(select(AccessRequest).where(AccessRequest.id == request_id).with_for_update()).first()
        if req is None:
            raise RuleViolation("no such access request", 404)
        return req

    def grant_status(self, grant: Grant, dataset_state: str | None = None) -> str:
        state = dataset_state
        if state is None:
            state = grant_dataset_state(grant)
        return rules.grant_status(valid_from=aware(grant.valid_from), valid_until=aware(grant.valid_until),
                                  revoked_at=grant.revoked_at, dataset_state=state, now=self.now())

    # --- requests -----------------------------------------------------------
    def submit(self, s: Session, *, requester: str, requester_projects: Iterable[str], dataset_id: str,
               project: str, purpose: str, intended_use: str, duration_days: int,
               extends_grant_id: int | None = None) -> AccessRequest:
        """A new request; while the project holds a grant in force for the dataset only an extension of
        that grant (``extends_grant_id``) may be asked for, and never while another request is pending."""
        ds = s.get(Dataset, dataset_id)
        rules.check_can_request(requester_projects=requester_projects, project=project,
                                dataset_state=dataset_state(ds) if ds else None)
        purpose = rules.check_text("a purpose", purpose, self.policy)
        intended_use = rules.check_text("the intended use", intended_use, self.policy, required=False)
        duration_days = rules.check_duration(duration_days, self.policy)
        pending = s.scalars(select(AccessRequest).where(
            AccessRequest.dataset_id == dataset_id, AccessRequest.project == project,
            AccessRequest.state.in_(list(rules.PENDING)))).first()
        if pending is not None:
            raise RuleViolation(f"project {project!r} already has a pending request (#{pending.id}) for this dataset")
        held = self.grants_in_force(s, projects=[project], dataset_ids=[dataset_id])
        if extends_grant_id is None and held:
            g = held[0][0]
            raise RuleViolation(f"project {project!r} holds a grant for this dataset until "
                                f"{aware(g.valid_until):%Y-%m-%d}: ask for an extension of grant #{g.id} instead")
        if extends_grant_id is not None and extends_grant_id not in {g.id for g, _ in held}:
            raise RuleViolation(f"grant #{extends_grant_id} is not a grant in force of project {project!r} "
                                "for this dataset: only such a grant can be extended", 422)
        now = self.now()
        req = AccessRequest(dataset_id=dataset_id, project=project, requester=requester, purpose=purpose,
                            intended_use=intended_use, duration_days=duration_days, state=RequestState.submitted,
                            round=1, created_at=now, updated_at=now, extends_grant_id=extends_grant_id)
        s.add(req)
        req.rounds.append(RequestRound(round=1, purpose=purpose, intended_use=intended_use,
                                       duration_days=duration_days, at=now))
        self._event(req, requester, "submitted",
                    f"for {duration_days} days" + (f", to extend grant #{extends_grant_id}" if extends_grant_id
                                                   else ""), now)
        s.flush()
        self.tracing.send(Action.REQUEST_ACCESS, user=requester, key=f"request:{req.id}:1",
                          dataset_ids=[dataset_id], digests={dataset_id: ds.merkle_root or ""},
                          details={"request_id": req.id, "project": project, "duration_days": duration_days,
                                   "round": 1, "extends_grant_id": extends_grant_id})
        self._tell(s, lambda: self.notifier.committee(project), "request-new",
                   f"New access request #{req.id}: {self._ds_name(s, dataset_id)}"
                   + (" (extension)" if extends_grant_id else ""),
                   f"{requester} asks for project {project}, {duration_days} days: {purpose[:300]}",
                   f"/requests/{req.id}")
        return req

    def vote(self, s: Session, request_id: int, *, reviewer: str, reviewer_projects: Iterable[str],
             decision: Decision | str, reason: str = "") -> AccessRequest:
        req = self._load_request(s, request_id)
        self._expire_if_stale(s, req)
        try:
            decision = Decision(decision)
        except ValueError:
            raise RuleViolation("decision must be 'approve' or 'reject'", 422)
        rules.check_vote(state=req.state, round=req.round, reviewer=reviewer, reviewer_projects=reviewer_projects,
                         requester=req.requester, project=req.project,
                         votes=[VoteRecord(v.reviewer, v.decision, v.round) for v in req.votes])
        if decision == Decision.reject:
            reason = rules.check_text("a reason", reason, self.policy)
        else:
            reason = rules.check_text("a comment", reason, self.policy, required=False)
        now = self.now()
        req.votes.append(Vote(round=req.round, reviewer=reviewer, decision=decision, reason=reason, at=now))
        self._event(req, reviewer, decision.value + "d", reason, now)
        req.updated_at = now
        outcome = rules.tally([VoteRecord(v.reviewer, v.decision, v.round) for v in req.votes], req.round,
                              self.policy)
        s.flush()
        if outcome == RequestState.approved:
            self._approve(s, req, now)
        elif outcome == RequestState.rejected:
            req.state = RequestState.rejected
            req.decided_at = now
            self._event(req, "committee", "rejected", "", now)
            self.tracing.send(Action.REJECT_ACCESS, user=req.requester, key=f"request:{req.id}",
                              dataset_ids=[req.dataset_id],
                              details={"request_id": req.id, "project": req.project, "round": req.round,
                                       "reviewers": [self.tracing.pseudonym(v.reviewer) for v in req.votes
                                                     if v.round == req.round and v.decision == Decision.reject]})
            self._tell(s, lambda: [req.requester], "request-decided",
                       f"Access refused: {self._ds_name(s, req.dataset_id)}",
                       f"Request #{req.id} for project {req.project} was rejected: {reason[:500]}",
                       f"/requests/{req.id}")
        return req

    def _approve(self, s: Session, req: AccessRequest, now: dt.datetime) -> Grant:
        ds = s.get(Dataset, req.dataset_id)
        if ds is None or dataset_state(ds) not in rules.REQUESTABLE_DATASET_STATES:
            raise RuleViolation("the dataset is no longer released: the request cannot be approved", 409)
        valid_from, valid_until = rules.grant_window(now, req.duration_days)
        approvers = [v.reviewer for v in req.votes if v.round == req.round and v.decision == Decision.approve]
        grant = Grant(request_id=req.id, project=req.project, dataset_id=req.dataset_id, valid_from=valid_from,
                      valid_until=valid_until, granted_by=approvers)
        s.add(grant)
        req.state = RequestState.approved
        req.decided_at = now
        self._event(req, "committee", "approved", f"grant until {valid_until:%Y-%m-%d}", now)
        s.flush()
        self.tracing.send(Action.GRANT_ACCESS, user=req.requester, key=f"grant:{grant.id}",
                          dataset_ids=[req.dataset_id], digests={req.dataset_id: ds.merkle_root or ""},
                          details={"request_id": req.id, "grant_id": grant.id, "project": req.project,
                                   "valid_from": valid_from.isoformat(), "valid_until": valid_until.isoformat(),
                                   "reviewers": [self.tracing.pseudonym(a) for a in approvers]})
        self._tell(s, lambda: [req.requester], "request-decided",
                   f"Access granted: {self._ds_name(s, req.dataset_id)}",
                   f"Request #{req.id} for project {req.project} was approved; the grant runs until "
                   f"{valid_until:%Y-%m-%d}.", f"/requests/{req.id}")
        return grant

    def request_changes(self, s: Session, request_id: int, *, reviewer: str, reviewer_projects: Iterable[str],
                        reason: str) -> AccessRequest:
        req = self._load_request(s, request_id)
        self._expire_if_stale(s, req)
        rules.check_reviewable(req.state)
        rules.check_reviewer(reviewer=reviewer, reviewer_projects=reviewer_projects, requester=req.requester,
                             project=req.project)
        reason = rules.check_text("a reason", reason, self.policy)
        now = self.now()
        req.state = rules.check_request_changes(req.state)
        req.updated_at = now
        self._event(req, reviewer, "changes-requested", reason, now)
        self._tell(s, lambda: [req.requester], "request-changes",
                   f"Changes asked for request #{req.id}: {self._ds_name(s, req.dataset_id)}",
                   f"{reviewer} asks: {reason[:500]}", "/my/requests")
        return req

    def resubmit(self, s: Session, request_id: int, *, actor: str, purpose: str, intended_use: str,
                 duration_days: int) -> AccessRequest:
        req = self._load_request(s, request_id)
        self._expire_if_stale(s, req)
        new_state = rules.check_resubmit(req.state, actor=actor, requester=req.requester)
        purpose = rules.check_text("a purpose", purpose, self.policy)
        intended_use = rules.check_text("the intended use", intended_use, self.policy, required=False)
        duration_days = rules.check_duration(duration_days, self.policy)
        ds = s.get(Dataset, req.dataset_id)
        if ds is None or dataset_state(ds) not in rules.REQUESTABLE_DATASET_STATES:
            raise RuleViolation("the dataset is no longer released: the request cannot be resubmitted", 409)
        now = self.now()
        req.purpose, req.intended_use, req.duration_days = purpose, intended_use, duration_days
        req.state = new_state
        req.round += 1
        req.updated_at = now
        req.rounds.append(RequestRound(round=req.round, purpose=purpose, intended_use=intended_use,
                                       duration_days=duration_days, at=now))
        self._event(req, actor, "resubmitted", f"round {req.round}, for {duration_days} days", now)
        s.flush()
        self.tracing.send(Action.REQUEST_ACCESS, user=actor, key=f"request:{req.id}:{req.round}",
                          dataset_ids=[req.dataset_id], digests={req.dataset_id: ds.merkle_root or ""},
                          details={"request_id": req.id, "project": req.project, "duration_days": duration_days,
                                   "round": req.round})
        self._tell(s, lambda: self.notifier.committee(req.project), "request-new",
                   f"Request #{req.id} resubmitted (round {req.round}): {self._ds_name(s, req.dataset_id)}",
                   f"{actor} revised the request for project {req.project}.", f"/requests/{req.id}")
        return req

    def withdraw(self, s: Session, request_id: int, *, actor: str) -> AccessRequest:
        req = self._load_request(s, request_id)
        self._expire_if_stale(s, req)
        req.state = rules.check_withdraw(req.state, actor=actor, requester=req.requester)
        now = self.now()
        req.decided_at = req.updated_at = now
        self._event(req, actor, "withdrawn", "", now)
        return req

    def _expire_if_stale(self, s: Session, req: AccessRequest) -> None:
        if rules.is_stale(req.state, aware(req.updated_at), self.now(), self.policy):
            req.state = RequestState.expired
            req.decided_at = self.now()
            self._event(req, "system", "expired", f"no decision in {self.policy.request_ttl_days} days")

    def expire_stale_requests(self, s: Session) -> int:
        n = 0
        cutoff = self.now() - dt.timedelta(days=self.policy.request_ttl_days)
        for req in s.scalars(select(AccessRequest).where(AccessRequest.state.in_(list(rules.PENDING)),
                                                         AccessRequest.updated_at <= cutoff)):
            self._expire_if_stale(s, req)
            n += 1
        return n

    # --- grants -------------------------------------------------------------
    def revoke(self, s: Session, grant_id: int, *, actor: str, reason: str) -> Grant:
        s.execute(update(Grant).where(Grant.id == grant_id).values(project=Grant.project))
        grant = s.scalars(select(Grant).where(Grant.id == grant_id).with_for_update()).first()
        if grant is None:
            raise RuleViolation("no such grant", 404)
        reason = rules.check_revoke(revoked_at=grant.revoked_at, reason=reason, policy=self.policy)
        now = self.now()
        grant.revoked_at, grant.revoked_by, grant.revoke_reason = now, actor, reason
        s.flush()
        self.tracing.send(Action.REVOKE_ACCESS, user=actor, key=f"grant:{grant.id}", dataset_ids=[grant.dataset_id],
                          details={"grant_id": grant.id, "project": grant.project,
                                   "request_id": grant.request_id})
        return grant

    def grants_in_force(self, s: Session, *, projects: Iterable[str] | None = None,
                        dataset_ids: Iterable[str] | None = None) -> list[tuple[Grant, Dataset]]:
        now = self.now()
        q = (select(Grant, Dataset).join(Dataset, Dataset.id == Grant.dataset_id)
             .where(Grant.revoked_at.is_(None), Grant.valid_from <= now, Grant.valid_until > now,
                    Dataset.state.in_(sorted(rules.REQUESTABLE_DATASET_STATES)))
             .order_by(Grant.dataset_id, Grant.valid_until.desc()))
        if projects is not None:
            q = q.where(Grant.project.in_(list(projects)))
        if dataset_ids is not None:
            q = q.where(Grant.dataset_id.in_(list(dataset_ids)))
        return [(g, d) for g, d in s.execute(q).all() if self.grant_status(g, dataset_state(d)) == "active"]

    def usable_datasets(self, s: Session, user: str) -> list[dict]:
        projects = self.directory.projects_of(user)
        if not projects:
            return []
        rows = []
        for g, d in self.grants_in_force(s, projects=projects):
            rows.append({"dataset_id": d.id, "name": d.name, "version": d.version, "project": g.project,
                         "gid": d.gid, "manifest_root": d.merkle_root or "",
                         "expires_at": aware(g.valid_until).isoformat()})
        # one row per (project, dataset): the grant that lasts longest
        seen, out = set(), []
        for r in rows:
            k = (r["project"], r["dataset_id"])
            if k not in seen:
                seen.add(k)
                out.append(r)
        return out


def grant_dataset_state(grant: Grant) -> str:
    from sqlalchemy.orm import object_session

    s = object_session(grant)
    d = s.get(Dataset, grant.dataset_id) if s is not None else None
    return dataset_state(d) if d is not None else "missing"
