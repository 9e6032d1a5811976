"""insitu/review.py: the one review and quorum rule of governance and the airlock, as tables."""
import enum

import pytest

from insitu.review import Ballot, Refusal, counts, outcome, refusal


class Word(str, enum.Enum):
    approve = "approve"
    reject = "reject"


A, R, RET = "approve", "reject", "return"
GOVERNANCE = {R: 1, A: 2}  # the defaults: one rejection rejects, two approvals approve
AIRLOCK = {R: 1, RET: 1, A: 1}


@pytest.mark.parametrize("reviewer, requester, ballots, round, conflicted, expected", [
    ("bob", "alice", [], 1, False, None),
    ("alice", "alice", [], 1, False, Refusal.own),
    ("alice", "alice", [], 1, True, Refusal.own),  # own before conflict
    ("bob", "alice", [], 1, True, Refusal.conflict),
    ("bob", "alice", [Ballot("bob", A)], 1, True, Refusal.conflict),  # conflict before again
    ("bob", "alice", [Ballot("bob", A)], 1, False, Refusal.again),
    ("bob", "alice", [Ballot("bob", R, round=1)], 2, False, None),  # a new round: bob reviews again
    ("bob", "alice", [Ballot("bob", R, round=2)], 2, False, Refusal.again),
    ("bob", "alice", [Ballot("carol", A)], 1, False, None),
    ("Bob", "bob", [], 1, False, None),  # logins are compared exactly
])
def test_who_may_review(reviewer, requester, ballots, round, conflicted, expected):
    assert refusal(reviewer, requester=requester, ballots=ballots, round=round, conflicted=conflicted) == expected


@pytest.mark.parametrize("ballots, required, round, expected", [
    ([], GOVERNANCE, 1, None),
    ([Ballot("b", A)], GOVERNANCE, 1, None),
    ([Ballot("b", A), Ballot("c", A)], GOVERNANCE, 1, A),
    ([Ballot("b", A), Ballot("b", A)], GOVERNANCE, 1, None),  # distinct reviewers only
    ([Ballot("b", A), Ballot("c", A), Ballot("d", R)], GOVERNANCE, 1, R),  # the veto is counted first
    ([Ballot("b", R)], GOVERNANCE, 1, R),
    ([Ballot("b", R)], {R: 2, A: 2}, 1, None),
    ([Ballot("b", R, 1), Ballot("c", A, 2)], GOVERNANCE, 2, None),  # only the current round counts
    ([Ballot("b", A, 1), Ballot("b", A, 2), Ballot("c", A, 2)], GOVERNANCE, 2, A),
    ([Ballot("b", Word.approve), Ballot("c", Word.approve)], GOVERNANCE, 1, A),  # enum decisions count as words
    ([Ballot("b", A)], AIRLOCK, 1, A),
    ([Ballot("b", RET)], AIRLOCK, 1, RET),
    ([Ballot("b", A), Ballot("c", RET)], {R: 1, RET: 1, A: 3}, 1, RET),
    ([Ballot("b", A), Ballot("c", A)], {R: 1, RET: 1, A: 3}, 1, None),
])
def test_outcome(ballots, required, round, expected):
    assert outcome(ballots, required, round) == expected


def test_counts_per_decision_and_round():
    ballots = [Ballot("b", A), Ballot("c", A), Ballot("b", A), Ballot("d", R), Ballot("e", A, round=2)]
    assert counts(ballots) == {A: 2, R: 1}
    assert counts(ballots, 2) == {A: 1}


def test_a_quorum_below_one_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        outcome([], {A: 0})
