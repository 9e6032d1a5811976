"""A request's rounds side by side: what each round submitted, its votes and comments, and a word diff
from the round before (pure functions over the governance models)."""
from __future__ import annotations

import difflib
import re

from ..governance.models import AccessRequest
from ..governance.rules import Decision, RequestState
from ..governance.service import aware

FIELDS = (("purpose", "Purpose"), ("intended_use", "Intended use"), ("duration_days", "Duration (days)"))
_TOKENS = re.compile(r"\s+|[^\s]+")


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """``[(op, text)]`` with op ``=``, ``-`` (only in ``old``) or ``+`` (only in ``new``), word by word."""
    a, b = _TOKENS.findall(old or ""), _TOKENS.findall(new or "")
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("=", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("-", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("+", "".join(b[j1:j2])))
    return out


def rounds_of(req: AccessRequest) -> list[dict]:
    """Every round with what was submitted, its votes, the comments it drew, and its diff from the last."""
    snaps = {r.round: {"purpose": r.purpose, "intended_use": r.intended_use or "", "duration_days": r.duration_days,
                       "at": aware(r.at)} for r in req.rounds}
    if req.round not in snaps:  # made before rounds were recorded: the current text is the last round's
        snaps[req.round] = {"purpose": req.purpose, "intended_use": req.intended_use or "",
                            "duration_days": req.duration_days, "at": aware(req.updated_at)}
    # events belong to the round that was open when they happened
    events_by_round: dict[int, list[dict]] = {}
    current = 1
    for e in req.events:
        if e.action == "resubmitted":
            m = re.match(r"round (\d+)", e.detail or "")
            current = int(m.group(1)) if m else current + 1
        events_by_round.setdefault(current, []).append(
            {"at": aware(e.at), "actor": e.actor, "action": e.action, "detail": e.detail})
    out = []
    prev = None
    for n in range(1, req.round + 1):
        snap = snaps.get(n)
        row = {"round": n, "submitted": snap, "votes": [
            {"reviewer": v.reviewer, "decision": v.decision.value, "reason": v.reason, "at": aware(v.at)}
            for v in req.votes if v.round == n],
            "events": events_by_round.get(n, []),
            "changes_asked": [e for e in events_by_round.get(n, []) if e["action"] == "changes-requested"],
            "diff": None}
        if snap and prev:
            row["diff"] = [{"label": label, "changed": str(prev[k]) != str(snap[k]),
                            "parts": word_diff(str(prev[k]), str(snap[k]))} for k, label in FIELDS]
        out.append(row)
        prev = snap or prev
    return out


def decision_reason(req: AccessRequest) -> str:
    """Why a decided request ended as it did, in a line: the rejecting reasons, the grant, the withdrawal."""
    state = RequestState(req.state)
    if state == RequestState.rejected:
        return "; ".join(f"{v.reviewer}: {v.reason}" for v in req.votes
                         if v.round == req.round and v.decision == Decision.reject and v.reason)
    if state == RequestState.approved:
        notes = [e.detail for e in req.events if e.action == "approved" and e.actor == "committee"]
        comments = [f"{v.reviewer}: {v.reason}" for v in req.votes if v.round == req.round and v.reason]
        return "; ".join(notes[-1:] + comments)
    if state == RequestState.withdrawn:
        return "withdrawn by the requester"
    ends = [e.detail for e in req.events if e.action == state.value and e.detail]
    return ends[-1] if ends else ""
