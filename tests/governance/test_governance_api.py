"""Access governance through the real API: a real JupyterHub resolves every token,
the real tracer takes every trace, the dataset service keeps state in SQLite.

Each refusal is checked for its status, its reason, and that nothing changed
(no request state change, no vote, no grant, no session, no trace).
"""
from __future__ import annotations

import datetime as dt

import pytest

from insitu.trace_client import pseudonym

KEY = "test-pseudonym-key"


@pytest.fixture
def st(governance_stack):
    return governance_stack


def traces(st, **filters):
    return st.tracer.traces(st.token("audrey"), **filters)


def ask(st, ds, user="alice", project="lung", days=30, **extra):
    body = {"dataset_id": ds, "project": project, "purpose": "train a lung nodule detector",
            "intended_use": "model training inside the workspace", "duration_days": days, **extra}
    with st.api(user) as c:
        return c.post("/api/access-requests", json=body)


def vote(st, req_id, user, decision="approve", reason=""):
    with st.api(user) as c:
        return c.post(f"/api/access-requests/{req_id}/votes", json={"decision": decision, "reason": reason})


def get_req(st, req_id, user="dac1"):
    with st.api(user) as c:
        r = c.get(f"/api/access-requests/{req_id}")
        assert r.status_code == 200, r.text
        return r.json()


def granted(st, ds, user="alice", project="lung", days=30):
    r = ask(st, ds, user, project, days)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert vote(st, rid, "dac1").status_code == 200
    r = vote(st, rid, "dac2")
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    return rid, r.json()["grant_id"]


def open_session(st, user, project, ds_ids, caller="insitu-hub"):
    with st.api(caller) as c:
        return c.post("/api/sessions", json={"user": user, "project": project, "dataset_ids": ds_ids,
                                             "profile": "cpu"})


def n_sessions(st):
    return st.sql("select count(*) from work_sessions")[0][0]


# --- the happy path ----------------------------------------------------------
def test_request_two_approvals_grant_session_and_traces(st):
    ds = st.add_dataset("Lung CT cohort")
    r = ask(st, ds)
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["state"] == "submitted" and req["requester"] == "alice" and req["approvals_required"] == 2

    r = vote(st, req["id"], "dac1")
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    with st.api("alice") as c:
        assert c.get(f"/api/users/alice/usable-datasets").json() == []
    r = vote(st, req["id"], "dac2", reason="fine")
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "approved" and body["grant_id"]

    with st.api("dac1") as c:
        grants = c.get("/api/grants", params={"dataset_id": ds}).json()
    assert len(grants) == 1 and grants[0]["status"] == "active" and grants[0]["project"] == "lung"
    until = dt.datetime.fromisoformat(grants[0]["valid_until"])
    start = dt.datetime.fromisoformat(grants[0]["valid_from"])
    assert until - start == dt.timedelta(days=30)
    assert sorted(grants[0]["granted_by"]) == ["dac1", "dac2"]

    # the hub and alice herself see the dataset as usable; carol too (project-lung), bob not
    with st.api("insitu-hub") as c:
        rows = c.get("/api/users/alice/usable-datasets").json()
        assert [(x["dataset_id"], x["project"]) for x in rows] == [(ds, "lung")]
        assert rows[0]["gid"] > 0 and len(rows[0]["manifest_root"]) == 64 and rows[0]["expires_at"]
        assert [x["dataset_id"] for x in c.get("/api/users/carol/usable-datasets").json()] == [ds]
        assert c.get("/api/users/bob/usable-datasets").json() == []

    r = open_session(st, "alice", "lung", [ds])
    assert r.status_code == 201, r.text
    sess = r.json()
    assert set(sess) >= {"session_id", "user", "project", "lake_dir", "lake_mount_path", "datasets"}
    assert sess["lake_mount_path"] == "/mnt/datalake"
    (d,) = sess["datasets"]
    assert d["dataset_id"] == ds and d["path"].endswith(ds) and d["gid"] == rows[0]["gid"]
    assert d["manifest_root"] == rows[0]["manifest_root"]
    # what the workspace shows of it: the dataset's name and version, the grant and when it ends
    assert (d["name"], d["version"], d["expires_at"]) == (rows[0]["name"], rows[0]["version"], rows[0]["expires_at"])
    assert d["grant_id"] == body["grant_id"] and d["expires_at"] == grants[0]["valid_until"]

    used = traces(st, dataset=ds, action="USE_DATASETS")
    assert len(used) == 1
    t = used[0]["trace"]
    assert t["details"]["session_id"] == sess["session_id"] and t["digests"][ds] == d["manifest_root"]
    assert t["user"] == pseudonym("alice", KEY) and "alice" not in str(t)

    with st.api("insitu-hub") as c:
        assert c.get(f"/api/sessions/{sess['session_id']}").json()["open"] is True
        assert c.delete(f"/api/sessions/{sess['session_id']}").status_code == 204
        assert c.get(f"/api/sessions/{sess['session_id']}").json()["open"] is False
        assert c.delete(f"/api/sessions/{sess['session_id']}").status_code == 204  # idempotent
        assert c.delete("/api/sessions/no-such-session").status_code == 404
    actions = [x["trace"]["action"] for x in traces(st, dataset=ds)]
    assert actions == ["REQUEST_ACCESS", "GRANT_ACCESS", "USE_DATASETS", "END_SESSION"]
    grant_trace = traces(st, dataset=ds, action="GRANT_ACCESS")[0]["trace"]
    assert sorted(grant_trace["details"]["reviewers"]) == sorted(pseudonym(u, KEY) for u in ("dac1", "dac2"))

    # access history: who used it, when, from which session
    with st.api("audrey") as c:
        h = c.get(f"/api/datasets/{ds}/access-history").json()
    assert [(x["session_id"], x["user"], x["project"]) for x in h["sessions"]] == \
        [(sess["session_id"], "alice", "lung")]
    assert h["sessions"][0]["closed_at"] and h["grants"][0]["id"] == body["grant_id"]


# --- refusals: nothing changes ---------------------------------------------------
@pytest.mark.parametrize("state", ["draft", "building", "invalidated", "failed"])
def test_request_for_unreleased_or_invalidated_dataset_refused(st, state):
    ds = st.add_dataset("Not yet", state=state)
    r = ask(st, ds)
    assert r.status_code == 409 and state in r.json()["detail"]
    assert st.sql("select count(*) from access_requests where dataset_id = :d", d=ds)[0][0] == 0
    assert traces(st, dataset=ds) == []


def test_request_bad_input(st):
    ds = st.add_dataset()
    assert ask(st, "ds-does-not-exist").status_code == 404
    r = ask(st, ds, project="brain")  # alice is not in project-brain
    assert r.status_code == 403 and "brain" in r.json()["detail"]
    assert ask(st, ds, days=0).status_code == 422
    assert ask(st, ds, days=10_000).status_code == 422
    r = ask(st, ds, purpose="  ")
    assert r.status_code == 422 and "purpose" in r.text
    assert ask(st, ds, unknown_field=1).status_code == 422
    with st.api("alice") as c:
        assert c.post("/api/access-requests", content=b"not json",
                      headers={"content-type": "application/json"}).status_code == 422
    assert st.sql("select count(*) from access_requests where dataset_id = :d", d=ds)[0][0] == 0
    # one pending request per project and dataset
    assert ask(st, ds).status_code == 201
    r = ask(st, ds, user="carol")
    assert r.status_code == 409 and "pending" in r.json()["detail"]


def test_self_review_refused(st):
    ds = st.add_dataset()
    rid = ask(st, ds).json()["id"]
    r = vote(st, rid, "dac3")  # dac3 is in project-lung
    assert r.status_code == 403 and "lung" in r.json()["detail"]
    with st.api("dac3") as c:
        r = c.post(f"/api/access-requests/{rid}/changes", json={"reason": "please add detail"})
    assert r.status_code == 403
    req = get_req(st, rid)
    assert req["votes"] == [] and req["state"] == "submitted"
    # a dac member reviewing a request of another project is fine
    ds2 = st.add_dataset()
    rid2 = ask(st, ds2, user="bob", project="brain").json()["id"]
    assert vote(st, rid2, "dac3").status_code == 200


def test_duplicate_vote_refused(st):
    ds = st.add_dataset()
    rid = ask(st, ds).json()["id"]
    assert vote(st, rid, "dac1").status_code == 200
    r = vote(st, rid, "dac1")
    assert r.status_code == 409 and "already voted" in r.json()["detail"]
    req = get_req(st, rid)
    assert len(req["votes"]) == 1 and req["state"] == "submitted"


def test_reject_needs_reason_then_ends_it_and_no_vote_on_decided(st):
    ds = st.add_dataset()
    rid = ask(st, ds).json()["id"]
    assert vote(st, rid, "dac1").status_code == 200
    r = vote(st, rid, "dac2", "reject")
    assert r.status_code == 422 and "reason" in r.text
    r = vote(st, rid, "dac2", "reject", "the purpose does not need identifiable dates")
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    r = vote(st, rid, "admin")
    assert r.status_code == 409 and "rejected" in r.json()["detail"]
    req = get_req(st, rid)
    assert len(req["votes"]) == 2 and req["grant_id"] is None
    assert [x["trace"]["action"] for x in traces(st, dataset=ds)] == ["REQUEST_ACCESS", "REJECT_ACCESS"]
    # an approved request takes no more votes either
    ds2 = st.add_dataset()
    rid2, _ = granted(st, ds2)
    r = vote(st, rid2, "admin", "reject", "too late")
    assert r.status_code == 409 and "approved" in r.json()["detail"]
    assert st.sql("select count(*) from access_grants where dataset_id = :d", d=ds2)[0][0] == 1


def test_changes_resubmit_and_withdraw(st):
    ds = st.add_dataset()
    rid = ask(st, ds).json()["id"]
    assert vote(st, rid, "dac1").status_code == 200
    with st.api("dac2") as c:
        assert c.post(f"/api/access-requests/{rid}/changes", json={"reason": ""}).status_code == 422
        r = c.post(f"/api/access-requests/{rid}/changes", json={"reason": "say which models you train"})
    assert r.status_code == 200 and r.json()["state"] == "changes-requested"
    assert vote(st, rid, "dac2").status_code == 409  # waits for the requester
    new = {"purpose": "train a 3D U-Net for nodule segmentation", "intended_use": "MONAI training",
           "duration_days": 60}
    with st.api("carol") as c:  # same project, not the requester
        assert c.post(f"/api/access-requests/{rid}/resubmit", json=new).status_code == 403
        assert c.post(f"/api/access-requests/{rid}/withdraw").status_code == 403
    with st.api("alice") as c:
        r = c.post(f"/api/access-requests/{rid}/resubmit", json=new)
    assert r.status_code == 200
    req = r.json()
    assert req["state"] == "resubmitted" and req["round"] == 2 and req["duration_days"] == 60
    # dac1's approval of round 1 does not count any more: one new approval is not enough
    assert vote(st, rid, "dac2").json()["state"] == "resubmitted"
    r = vote(st, rid, "dac1")
    assert r.json()["state"] == "approved"
    with st.api("alice") as c:
        r = c.post(f"/api/access-requests/{rid}/withdraw")
    assert r.status_code == 409
    # withdraw a pending request
    ds2 = st.add_dataset()
    rid2 = ask(st, ds2).json()["id"]
    with st.api("alice") as c:
        assert c.post(f"/api/access-requests/{rid2}/withdraw").json()["state"] == "withdrawn"
    assert vote(st, rid2, "dac1").status_code == 409


def test_revoke_ends_use_and_lists_uncovered_session(st):
    ds = st.add_dataset()
    _, gid = granted(st, ds)
    sess = open_session(st, "alice", "lung", [ds]).json()
    with st.api("insitu-hub") as c:
        assert sess["session_id"] not in [x["session_id"] for x in c.get("/api/sessions/uncovered").json()]
    with st.api("dac1") as c:
        assert c.post(f"/api/grants/{gid}/revoke", json={"reason": ""}).status_code == 422
        r = c.post(f"/api/grants/{gid}/revoke", json={"reason": "project closed early"})
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        r = c.post(f"/api/grants/{gid}/revoke", json={"reason": "again"})
        assert r.status_code == 409
        assert c.post("/api/grants/999999/revoke", json={"reason": "nothing"}).status_code == 404
    with st.api("insitu-hub") as c:
        assert c.get("/api/users/alice/usable-datasets").json() == [] or \
            ds not in [x["dataset_id"] for x in c.get("/api/users/alice/usable-datasets").json()]
        unc = {x["session_id"]: x for x in c.get("/api/sessions/uncovered").json()}
    assert sess["session_id"] in unc and "revoked" in unc[sess["session_id"]]["reason"]
    assert unc[sess["session_id"]]["dataset_ids"] == [ds]
    before = n_sessions(st)
    r = open_session(st, "alice", "lung", [ds])
    assert r.status_code == 403
    assert r.json()["detail"]["refused"] == [{"dataset_id": ds, "reason": "the grant was revoked"}]
    assert n_sessions(st) == before
    assert [x["trace"]["action"] for x in traces(st, dataset=ds)] == \
        ["REQUEST_ACCESS", "GRANT_ACCESS", "USE_DATASETS", "REVOKE_ACCESS"]


def test_expired_grant_use_refused(st):
    ds = st.add_dataset()
    _, gid = granted(st, ds, days=1)
    sess = open_session(st, "alice", "lung", [ds]).json()
    # a day passes: the grant's end is now in the past
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    st.sql("update access_grants set valid_until = :t where id = :g", t=past.replace(tzinfo=None), g=gid)
    before, n_traces = n_sessions(st), len(traces(st, dataset=ds))
    r = open_session(st, "alice", "lung", [ds])
    assert r.status_code == 403
    assert r.json()["detail"]["refused"] == [{"dataset_id": ds, "reason": "the grant has expired"}]
    assert n_sessions(st) == before and len(traces(st, dataset=ds)) == n_traces
    with st.api("insitu-hub") as c:
        assert ds not in [x["dataset_id"] for x in c.get("/api/users/alice/usable-datasets").json()]
        unc = {x["session_id"]: x for x in c.get("/api/sessions/uncovered").json()}
    assert "expired" in unc[sess["session_id"]]["reason"]
    with st.api("dac1") as c:
        assert c.get("/api/grants", params={"dataset_id": ds}).json()[0]["status"] == "expired"
        assert c.get("/api/grants", params={"dataset_id": ds, "active": True}).json() == []


def test_invalidation_ends_grants(st):
    ds = st.add_dataset()
    granted(st, ds)
    sess = open_session(st, "alice", "lung", [ds]).json()
    st.set_state(ds, "invalidated")
    with st.api("dac1") as c:
        assert c.get("/api/grants", params={"dataset_id": ds}).json()[0]["status"] == "dataset-invalidated"
    with st.api("insitu-hub") as c:
        assert ds not in [x["dataset_id"] for x in c.get("/api/users/alice/usable-datasets").json()]
        unc = {x["session_id"]: x for x in c.get("/api/sessions/uncovered").json()}
    assert "invalidated" in unc[sess["session_id"]]["reason"]
    r = open_session(st, "alice", "lung", [ds])
    assert r.status_code == 403 and r.json()["detail"]["refused"][0]["reason"] == "the dataset is invalidated"


def test_session_checks_membership_with_the_hub_not_the_caller(st):
    lung, brain = st.add_dataset(), st.add_dataset()
    granted(st, lung)
    granted(st, brain, user="bob", project="brain")
    before = n_sessions(st)
    # bob is not in project-lung: the hub says so, whatever the caller asks
    r = open_session(st, "bob", "lung", [lung])
    assert r.status_code == 403 and "not a member" in r.json()["detail"]["reason"]
    # alice in her project, asking for a dataset granted to another project
    r = open_session(st, "alice", "lung", [lung, brain])
    assert r.status_code == 403
    assert r.json()["detail"]["refused"] == [
        {"dataset_id": brain, "reason": "project 'lung' holds no grant for this dataset"}]
    r = open_session(st, "ghost-user", "lung", [lung])
    assert r.status_code == 403 and "does not know" in r.json()["detail"]["reason"]
    r = open_session(st, "alice", "lung", [lung, "ds-missing"])
    assert r.json()["detail"]["refused"] == [{"dataset_id": "ds-missing", "reason": "no such dataset"}]
    assert n_sessions(st) == before
    # carol is in both projects: she may open a brain session
    r = open_session(st, "carol", "brain", [brain])
    assert r.status_code == 201
    # a group removed at the hub takes effect at once
    st.hub.set_groups("carol", ["researchers", "project-lung"])
    try:
        r = open_session(st, "carol", "brain", [brain])
        assert r.status_code == 403
        with st.api("insitu-hub") as c:
            assert brain not in [x["dataset_id"] for x in c.get("/api/users/carol/usable-datasets").json()]
    finally:
        st.hub.set_groups("carol", ["researchers", "project-lung", "project-brain"])


def test_session_bad_input(st):
    ds = st.add_dataset()
    granted(st, ds)
    with st.api("insitu-hub") as c:
        for body in ({"user": "alice", "project": "lung", "dataset_ids": []},
                     {"user": "alice", "project": "lung", "dataset_ids": [ds, ds]},
                     {"user": "alice", "project": "lung", "dataset_ids": ["../etc"]},
                     {"user": "alice", "dataset_ids": [ds]},
                     {"user": "alice", "project": "lung", "dataset_ids": [ds], "extra": 1}):
            r = c.post("/api/sessions", json=body)
            assert r.status_code == 422, body


def test_tracer_down_refuses_session_and_records_nothing(st):
    ds = st.add_dataset()
    granted(st, ds)
    before = n_sessions(st)
    st.tracer.stop()
    try:
        r = open_session(st, "alice", "lung", [ds])
        assert r.status_code == 503 and "tracer" in r.json()["detail"]
        assert n_sessions(st) == before
        # the other traced steps fail closed too
        ds2 = st.add_dataset()
        r = ask(st, ds2)
        assert r.status_code == 503
        assert st.sql("select count(*) from access_requests where dataset_id = :d", d=ds2)[0][0] == 0
    finally:
        st.tracer.start()
    assert [x["trace"]["action"] for x in traces(st, dataset=ds)] == ["REQUEST_ACCESS", "GRANT_ACCESS"]
    assert open_session(st, "alice", "lung", [ds]).status_code == 201


def test_request_expiry(st):
    ds = st.add_dataset()
    rid = ask(st, ds).json()["id"]
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=91)
    st.sql("update access_requests set updated_at = :t where id = :r", t=old.replace(tzinfo=None), r=rid)
    r = vote(st, rid, "dac1")
    assert r.status_code == 409 and "expired" in r.json()["detail"]


def test_quorum_is_configurable(st):
    gov = st.app.state.governance
    old = gov.policy
    from dataclasses import replace

    gov.policy = replace(old, approvals_required=3, rejections_required=2)
    try:
        ds = st.add_dataset()
        rid = ask(st, ds).json()["id"]
        assert vote(st, rid, "dac1").json()["state"] == "submitted"
        assert vote(st, rid, "dac2", "reject", "not convinced").json()["state"] == "submitted"
        assert vote(st, rid, "admin").json()["state"] == "submitted"
        ds2 = st.add_dataset()
        rid2 = ask(st, ds2, user="bob", project="brain").json()["id"]
        for u in ("dac1", "dac2", "dac3"):
            r = vote(st, rid2, u)
        assert r.json()["state"] == "approved"
    finally:
        gov.policy = old


def test_simultaneous_approvals_reach_the_quorum_once(st):
    """Two committee members approve at the same moment: one grant, state approved."""
    from concurrent.futures import ThreadPoolExecutor

    for _ in range(3):
        ds = st.add_dataset()
        rid = ask(st, ds).json()["id"]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda u: vote(st, rid, u), ["dac1", "dac2"]))
        assert sorted(r.status_code for r in results) == [200, 200], [r.text for r in results]
        req = get_req(st, rid)
        assert req["state"] == "approved" and len(req["votes"]) == 2
        assert st.sql("select count(*) from access_grants where request_id = :r", r=rid)[0][0] == 1
        assert len(traces(st, dataset=ds, action="GRANT_ACCESS")) == 1
