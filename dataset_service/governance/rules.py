"""The access-governance rules as pure functions: no database, no clock, no I/O.

Request state machine::

    submitted ──request changes──▶ changes-requested ──resubmit──▶ resubmitted
        │  ▲                                                          │
        │  └──────────────────── (reviews continue) ◀─────────────────┘
        ├── approvals reach the quorum ──▶ approved   (a grant is made)
        ├── rejections reach the limit ──▶ rejected
        ├── the requester withdraws   ──▶ withdrawn   (from any pending state)
        └── nobody decides in time    ──▶ expired     (from any pending state)

Invariants
- Only ``submitted`` and ``resubmitted`` requests take votes or requests for
  changes; a decided request (approved, rejected, withdrawn, expired) takes
  nothing, ever.
- A reviewer votes at most once per round; a resubmission opens a new round,
  and only the votes of the current round count (the request changed).
- Nobody reviews a request of a project they belong to, nor their own request.
- A reason is required to reject, to ask for changes and to revoke.
- ``approvals_required`` approvals approve; ``rejections_required``
  rejections reject (1 by default: one rejection ends it).
  Who may review and what the votes decide is the platform's one review rule
  (``insitu/review.py``, shared with the export airlock), with these numbers and words.
- A grant is in force iff it is not revoked or ended, ``valid_from <= now <
  valid_until``, and its dataset is released or published.

Every refusal is a :class:`RuleViolation` with an HTTP status and a reason
meant for people; callers turn it into a 4xx and change nothing.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Iterable

from insitu.review import Ballot, Refusal, outcome, refusal


class RequestState(str, enum.Enum):
    submitted = "submitted"
    changes_requested = "changes-requested"
    resubmitted = "resubmitted"
    approved = "approved"
    rejected = "rejected"
    withdrawn = "withdrawn"
    expired = "expired"


REVIEWABLE = frozenset({RequestState.submitted, RequestState.resubmitted})
PENDING = frozenset({RequestState.submitted, RequestState.changes_requested, RequestState.resubmitted})
DECIDED = frozenset({RequestState.approved, RequestState.rejected, RequestState.withdrawn, RequestState.expired})

# dataset states (dataset_service.models.DatasetState values) a grant can be used on / asked for
REQUESTABLE_DATASET_STATES = frozenset({"released", "published"})


class Decision(str, enum.Enum):
    approve = "approve"
    reject = "reject"


class RuleViolation(Exception):
    """A governance rule refuses an action. ``status`` is the HTTP status to answer."""

    def __init__(self, reason: str, status: int = 409):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Policy:
    """Configurable parts of the rules (see ``GovernanceSettings``)."""

    approvals_required: int = 2
    rejections_required: int = 1
    max_duration_days: int = 365
    request_ttl_days: int = 90  # a pending request nobody decides expires after this
    min_reason_length: int = 3
    max_text_length: int = 4000

    def __post_init__(self):
        if self.approvals_required < 1 or self.rejections_required < 1:
            raise ValueError("quorum and rejection limit must be at least 1")
        if self.max_duration_days < 1 or self.request_ttl_days < 1:
            raise ValueError("durations must be at least one day")


VoteRecord = Ballot  # a committee member's vote: (reviewer, decision, round)


# --- input checks ------------------------------------------------------------
def check_text(name: str, value: str | None, policy: Policy, *, required: bool = True) -> str:
    value = (value or "").strip()
    if required and len(value) < policy.min_reason_length:
        raise RuleViolation(f"{name} is required (at least {policy.min_reason_length} characters)", 422)
    if len(value) > policy.max_text_length:
        raise RuleViolation(f"{name} is too long (at most {policy.max_text_length} characters)", 422)
    return value


def check_duration(days: int, policy: Policy) -> int:
    if not isinstance(days, int) or isinstance(days, bool) or days < 1 or days > policy.max_duration_days:
        raise RuleViolation(f"the requested duration must be between 1 and {policy.max_duration_days} days", 422)
    return days


def check_can_request(*, requester_projects: Iterable[str], project: str, dataset_state: str | None) -> None:
    """A researcher asks for a dataset on behalf of one of their own projects."""
    if dataset_state is None:
        raise RuleViolation("no such dataset", 404)
    if project not in set(requester_projects):
        raise RuleViolation(f"you are not a member of project {project!r}", 403)
    if dataset_state not in REQUESTABLE_DATASET_STATES:
        raise RuleViolation(
            f"access can only be requested to a released or published dataset (this one is {dataset_state})", 409)


# --- transitions ------------------------------------------------------------
def check_reviewable(state: RequestState) -> None:
    if state in DECIDED:
        raise RuleViolation(f"the request is already {state.value}; it takes no more reviews", 409)
    if state not in REVIEWABLE:
        raise RuleViolation(f"the request is {state.value}: it waits for the requester", 409)


def check_reviewer(*, reviewer: str, reviewer_projects: Iterable[str], requester: str, project: str,
                   votes: Iterable[VoteRecord] = (), round: int = 1) -> None:
    """No self-review: not one's own request, not a request of one's own project; one vote per round."""
    why = refusal(reviewer, requester=requester, ballots=votes, round=round,
                  conflicted=project in set(reviewer_projects))
    if why is Refusal.own:
        raise RuleViolation("you cannot review your own request", 403)
    if why is Refusal.conflict:
        raise RuleViolation(f"you are a member of project {project!r} and cannot review its requests", 403)
    if why is Refusal.again:
        raise RuleViolation("you have already voted on this request", 409)


def check_vote(
    *,
    state: RequestState,
    round: int,
    reviewer: str,
    reviewer_projects: Iterable[str],
    requester: str,
    project: str,
    votes: Iterable[VoteRecord],
) -> None:
    check_reviewable(state)
    check_reviewer(reviewer=reviewer, reviewer_projects=reviewer_projects, requester=requester, project=project,
                   votes=votes, round=round)


def tally(votes: Iterable[VoteRecord], round: int, policy: Policy) -> RequestState | None:
    """The decision the current round's votes reach, or ``None`` while pending.

    Rejections are counted first: with the default limit of one, a single
    rejection decides whatever the approvals.
    """
    decided = outcome(votes, {Decision.reject.value: policy.rejections_required,
                              Decision.approve.value: policy.approvals_required}, round)
    return {Decision.reject.value: RequestState.rejected, Decision.approve.value: RequestState.approved}.get(decided)


def check_request_changes(state: RequestState) -> RequestState:
    check_reviewable(state)
    return RequestState.changes_requested


def check_resubmit(state: RequestState, *, actor: str, requester: str) -> RequestState:
    if actor != requester:
        raise RuleViolation("only the requester can resubmit a request", 403)
    if state != RequestState.changes_requested:
        raise RuleViolation(f"only a request with changes requested can be resubmitted (this one is {state.value})",
                            409)
    return RequestState.resubmitted


def check_withdraw(state: RequestState, *, actor: str, requester: str) -> RequestState:
    if actor != requester:
        raise RuleViolation("only the requester can withdraw a request", 403)
    if state not in PENDING:
        raise RuleViolation(f"the request is already {state.value}", 409)
    return RequestState.withdrawn


def is_stale(state: RequestState, updated_at: dt.datetime, now: dt.datetime, policy: Policy) -> bool:
    """A pending request nobody touched for ``request_ttl_days`` expires."""
    return state in PENDING and now - updated_at >= dt.timedelta(days=policy.request_ttl_days)


# --- grants -----------------------------------------------------------------
def grant_window(approved_at: dt.datetime, duration_days: int) -> tuple[dt.datetime, dt.datetime]:
    return approved_at, approved_at + dt.timedelta(days=duration_days)


END_REASONS = ("stopped", "revoked", "invalidated", "expired", "crashed", "failed_start")


def end_reason_of(status: str) -> str:
    """The END_SESSION reason for a session whose grant has this ``grant_status``."""
    if status.startswith("dataset-"):
        return "invalidated"
    return status if status in ("revoked", "expired") else "revoked"


def grant_status(
    *,
    valid_from: dt.datetime,
    valid_until: dt.datetime,
    revoked_at: dt.datetime | None,
    dataset_state: str,
    now: dt.datetime,
) -> str:
    """``active``, or why not: ``revoked``, ``expired``, ``not-yet-valid``, ``dataset-<state>``."""
    if revoked_at is not None:
        return "revoked"
    if dataset_state not in REQUESTABLE_DATASET_STATES:
        return f"dataset-{dataset_state}"
    if now < valid_from:
        return "not-yet-valid"
    if now >= valid_until:
        return "expired"
    return "active"


def check_revoke(*, revoked_at: dt.datetime | None, reason: str, policy: Policy) -> str:
    if revoked_at is not None:
        raise RuleViolation("the grant is already revoked", 409)
    return check_text("a reason", reason, policy)
