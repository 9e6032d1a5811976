"""The one rule for reviews and their quorum, pure (no database, no clock, no I/O).

Access governance (the committee's votes on an access request, ``dataset_service/governance/rules.py``)
and the export airlock (reviews of an export request, ``dataset_service/airlock/service.py``) both decide
by reviews; both use this rule, each with its own decisions, numbers and words:

- nobody reviews their own request (``Refusal.own``), nor one they have a stake in (``Refusal.conflict``:
  e.g. a member of the request's project);
- one review per reviewer per round (``Refusal.again``); a new round (a resubmitted request) counts anew;
- ``outcome``: the current round's reviews are counted per decision, each reviewer once (distinct
  reviewers); the first decision of ``required``, in its order, whose count reaches its number decides,
  so vetoes listed first win (one rejection rejects whatever the approvals); none reached: still open.
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping


class Refusal(str, enum.Enum):
    own = "own"  # the reviewer is the requester
    conflict = "conflict"  # the reviewer has a stake in the request
    again = "again"  # the reviewer already reviewed it in this round


@dataclass(frozen=True)
class Ballot:
    """One review: who, which decision (a word or a str enum), in which round (1 unless requests have rounds)."""

    reviewer: str
    decision: str
    round: int = 1


def _word(decision) -> str:
    return decision.value if isinstance(decision, enum.Enum) else str(decision)


def refusal(reviewer: str, *, requester: str, ballots: Iterable[Ballot] = (), round: int = 1,
            conflicted: bool = False) -> Refusal | None:
    """Why ``reviewer`` may not review this request now (in the order own, conflict, again), or ``None``."""
    if reviewer == requester:
        return Refusal.own
    if conflicted:
        return Refusal.conflict
    if any(b.reviewer == reviewer and b.round == round for b in ballots):
        return Refusal.again
    return None


def counts(ballots: Iterable[Ballot], round: int = 1) -> Counter[str]:
    """Distinct reviewers per decision in ``round``."""
    seen: dict[str, set[str]] = {}
    for b in ballots:
        if b.round == round:
            seen.setdefault(_word(b.decision), set()).add(b.reviewer)
    return Counter({d: len(who) for d, who in seen.items()})


def outcome(ballots: Iterable[Ballot], required: Mapping[str, int], round: int = 1) -> str | None:
    """The first decision of ``required`` (in order) that ``round``'s reviews reach, or ``None``."""
    have = counts(ballots, round)
    for decision, needed in required.items():
        if needed < 1:
            raise ValueError(f"{_word(decision)!r} needs at least one review")
        if have[_word(decision)] >= needed:
            return _word(decision)
    return None
