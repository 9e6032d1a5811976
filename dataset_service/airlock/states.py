"""The export airlock's states, decisions and allowed transitions: the one place that says them
(in the manner of OpenSAFELY's airlock, where a request's states and moves are one enum and one table).

    pending -> approved    when the required approvals of distinct reviewers are in
    pending -> rejected    on a reviewer's rejection (terminal)
    pending -> returned    returned for changes (terminal: the researcher files a new request naming it)

Required approvals: ``quorum`` (settings), raised to ``high_quorum`` when any file has a High finding
(two independent reviewers, OpenSAFELY's rule). A reviewer may decide per file: every file approved is
an approval; every file rejected a rejection; a mix returns the request, so that the researcher asks
again for the approved files only. Traced actions: APPROVE_EXPORT per approval, REJECT_EXPORT,
RETURN_EXPORT (its own action, never a rejection).
"""
from __future__ import annotations

import enum

from insitu.trace import Action


class ExportState(str, enum.Enum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    returned = "returned"


class Decision(str, enum.Enum):
    approve = "approve"
    reject = "reject"
    return_ = "return"


class FileDecision(str, enum.Enum):
    approve = "approve"
    reject = "reject"


S = ExportState
TRANSITIONS: dict[ExportState, frozenset[ExportState]] = {
    S.pending: frozenset({S.approved, S.rejected, S.returned}),
    S.approved: frozenset(),
    S.rejected: frozenset(),
    S.returned: frozenset(),
}
OUTCOME = {Decision.approve: S.approved, Decision.reject: S.rejected, Decision.return_: S.returned}  # once reached
TRACE_ACTION = {Decision.approve: Action.APPROVE_EXPORT, Decision.reject: Action.REJECT_EXPORT,
                Decision.return_: Action.RETURN_EXPORT}
STATES = tuple(s.value for s in ExportState)
DECISIONS = tuple(d.value for d in Decision)
FILE_DECISIONS = tuple(d.value for d in FileDecision)


class TransitionRefused(ValueError):
    pass


def check_transition(current: str, target: str) -> None:
    if S(target) not in TRANSITIONS[S(current)]:
        raise TransitionRefused(f"the request is already {current}")


def required_approvals(quorum: int, high_quorum: int, severities) -> int:
    """Approvals that release a request: ``high_quorum`` (at least) when any file has a High finding."""
    return max(quorum, high_quorum) if any(s == "high" for s in severities) else quorum


def from_files(decisions: list[str]) -> Decision:
    """A reviewer's decision on the whole request from the decisions on its files."""
    if not decisions:
        raise ValueError("no file decisions")
    if all(d == FileDecision.approve.value for d in decisions):
        return Decision.approve
    if all(d == FileDecision.reject.value for d in decisions):
        return Decision.reject
    return Decision.return_
