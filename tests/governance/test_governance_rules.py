"""The pure governance rules: state machine, quorum, self-review, expiry, grant status."""
from __future__ import annotations

import datetime as dt

import pytest

from dataset_service.governance import rules
from dataset_service.governance.rules import Decision, Policy, RequestState, RuleViolation, VoteRecord

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
P = Policy()


def votes(*spec, round=1):
    return [VoteRecord(name, Decision(d), round) for name, d in spec]


def vote_ok(state=RequestState.submitted, reviewer="dac1", projects=(), existing=(), round=1):
    rules.check_vote(state=state, round=round, reviewer=reviewer, reviewer_projects=projects, requester="alice",
                     project="lung", votes=existing)


def test_default_quorum_is_two_approvals():
    assert rules.tally(votes(("dac1", "approve")), 1, P) is None
    assert rules.tally(votes(("dac1", "approve"), ("dac2", "approve")), 1, P) == RequestState.approved


def test_configurable_quorum():
    p3 = Policy(approvals_required=3)
    two = votes(("dac1", "approve"), ("dac2", "approve"))
    assert rules.tally(two, 1, p3) is None
    assert rules.tally(two + votes(("dac3", "approve")), 1, p3) == RequestState.approved
    assert rules.tally(votes(("dac1", "approve")), 1, Policy(approvals_required=1)) == RequestState.approved


def test_one_rejection_ends_it_unless_configured():
    one_no = votes(("dac1", "approve"), ("dac2", "reject"))
    assert rules.tally(one_no, 1, P) == RequestState.rejected
    lenient = Policy(rejections_required=2)
    assert rules.tally(one_no, 1, lenient) is None
    assert rules.tally(one_no + votes(("dac3", "approve")), 1, lenient) == RequestState.approved
    assert rules.tally(votes(("dac1", "reject"), ("dac2", "reject")), 1, lenient) == RequestState.rejected


def test_only_current_round_counts():
    old = votes(("dac1", "approve"), round=1)
    assert rules.tally(old + votes(("dac2", "approve"), round=2), 2, P) is None
    # a reviewer of round 1 may vote again in round 2
    vote_ok(state=RequestState.resubmitted, reviewer="dac1", existing=old, round=2)


def test_duplicate_vote_refused():
    with pytest.raises(RuleViolation) as e:
        vote_ok(existing=votes(("dac1", "approve")))
    assert e.value.status == 409 and "already voted" in e.value.reason


@pytest.mark.parametrize("state", sorted(rules.DECIDED, key=lambda s: s.value))
def test_no_vote_on_decided_request(state):
    with pytest.raises(RuleViolation) as e:
        vote_ok(state=state)
    assert e.value.status == 409 and state.value in e.value.reason


def test_no_vote_while_waiting_for_requester():
    with pytest.raises(RuleViolation, match="waits for the requester"):
        vote_ok(state=RequestState.changes_requested)


def test_self_review_refused():
    with pytest.raises(RuleViolation) as e:
        vote_ok(reviewer="dac3", projects={"lung"})
    assert e.value.status == 403 and "lung" in e.value.reason
    with pytest.raises(RuleViolation, match="your own request"):
        vote_ok(reviewer="alice")
    vote_ok(reviewer="dac3", projects={"brain"})  # another project is fine


def test_state_machine_edges():
    assert rules.check_request_changes(RequestState.submitted) == RequestState.changes_requested
    assert rules.check_request_changes(RequestState.resubmitted) == RequestState.changes_requested
    assert rules.check_resubmit(RequestState.changes_requested, actor="alice", requester="alice") == \
        RequestState.resubmitted
    with pytest.raises(RuleViolation):
        rules.check_resubmit(RequestState.submitted, actor="alice", requester="alice")
    with pytest.raises(RuleViolation) as e:
        rules.check_resubmit(RequestState.changes_requested, actor="bob", requester="alice")
    assert e.value.status == 403
    for st in rules.PENDING:
        assert rules.check_withdraw(st, actor="alice", requester="alice") == RequestState.withdrawn
    for st in rules.DECIDED:
        with pytest.raises(RuleViolation):
            rules.check_withdraw(st, actor="alice", requester="alice")
    with pytest.raises(RuleViolation):
        rules.check_withdraw(RequestState.submitted, actor="carol", requester="alice")
    for st in rules.DECIDED:
        with pytest.raises(RuleViolation):
            rules.check_request_changes(st)


def test_request_needs_project_membership_and_released_dataset():
    rules.check_can_request(requester_projects={"lung"}, project="lung", dataset_state="released")
    rules.check_can_request(requester_projects={"lung"}, project="lung", dataset_state="published")
    for state in ("building", "draft", "invalidated", "failed"):
        with pytest.raises(RuleViolation) as e:
            rules.check_can_request(requester_projects={"lung"}, project="lung", dataset_state=state)
        assert e.value.status == 409 and state in e.value.reason
    with pytest.raises(RuleViolation) as e:
        rules.check_can_request(requester_projects={"brain"}, project="lung", dataset_state="released")
    assert e.value.status == 403
    with pytest.raises(RuleViolation) as e:
        rules.check_can_request(requester_projects={"lung"}, project="lung", dataset_state=None)
    assert e.value.status == 404


def test_text_and_duration_checks():
    with pytest.raises(RuleViolation):
        rules.check_text("a reason", "  ", P)
    assert rules.check_text("a comment", "", P, required=False) == ""
    with pytest.raises(RuleViolation):
        rules.check_text("a purpose", "x" * (P.max_text_length + 1), P)
    for bad in (0, -1, P.max_duration_days + 1, True):
        with pytest.raises(RuleViolation):
            rules.check_duration(bad, P)
    assert rules.check_duration(30, P) == 30


def test_request_expiry():
    assert not rules.is_stale(RequestState.submitted, T0, T0 + dt.timedelta(days=89), P)
    assert rules.is_stale(RequestState.submitted, T0, T0 + dt.timedelta(days=90), P)
    assert rules.is_stale(RequestState.changes_requested, T0, T0 + dt.timedelta(days=100), P)
    assert not rules.is_stale(RequestState.approved, T0, T0 + dt.timedelta(days=900), P)


def test_grant_status():
    start, end = rules.grant_window(T0, 30)
    assert end - start == dt.timedelta(days=30)

    def st(now, revoked=None, ds="released"):
        return rules.grant_status(valid_from=start, valid_until=end, revoked_at=revoked, dataset_state=ds, now=now)

    assert st(T0) == "active"
    assert st(T0 + dt.timedelta(days=29, hours=23)) == "active"
    assert st(end) == "expired"
    assert st(T0 - dt.timedelta(seconds=1)) == "not-yet-valid"
    assert st(T0, revoked=T0) == "revoked"
    assert st(T0, ds="invalidated") == "dataset-invalidated"
    assert st(T0, ds="published") == "active"


def test_policy_validation():
    with pytest.raises(ValueError):
        Policy(approvals_required=0)
    with pytest.raises(ValueError):
        Policy(rejections_required=0)
