"""Permission matrix: every governance endpoint × every kind of caller.

Without a token: 401. A caller outside the endpoint's roles: 403. An allowed
caller gets past the check; the bodies here are deliberately incomplete or
name nothing that exists, so an allowed call answers 404/422 and changes
nothing. No case may answer 5xx.
"""
from __future__ import annotations

import pytest

CALLERS = ["anonymous", "alice", "bob", "carol", "dora", "dac1", "dac3", "audrey", "admin", "nobody",
           "insitu-hub", "dataset-service", "insitu-admission"]
RESEARCHERS = {"alice", "bob", "carol", "admin"}
DAC = {"dac1", "dac3", "admin"}


@pytest.fixture(scope="module")
def world(governance_stack):
    st = governance_stack
    ds = st.add_dataset("Permission matrix")
    with st.api("alice") as c:
        rid = c.post("/api/access-requests", json={"dataset_id": ds, "project": "lung", "purpose": "matrix test",
                                                   "duration_days": 10}).json()["id"]
    with st.api("dac1") as c:
        c.post(f"/api/access-requests/{rid}/votes", json={"decision": "approve"})
    with st.api("dac2") as c:
        c.post(f"/api/access-requests/{rid}/votes", json={"decision": "approve"})
    with st.api("insitu-hub") as c:
        sid = c.post("/api/sessions", json={"user": "alice", "project": "lung", "dataset_ids": [ds]}).json()[
            "session_id"]
    return {"ds": ds, "rid": rid, "sid": sid}


# (method, path template, json body, allowed callers)
MATRIX = [
    ("POST", "/api/access-requests", {}, RESEARCHERS),
    ("GET", "/api/access-requests", None, RESEARCHERS | DAC | {"audrey"}),
    ("GET", "/api/access-requests/{rid}", None, {"alice", "carol", "admin", "audrey"} | DAC),
    ("POST", "/api/access-requests/{rid}/votes", {}, DAC),
    ("POST", "/api/access-requests/{rid}/changes", {}, DAC),
    ("POST", "/api/access-requests/{rid}/resubmit", {}, RESEARCHERS),
    ("POST", "/api/access-requests/999999/withdraw", None, RESEARCHERS),
    ("GET", "/api/grants", None, RESEARCHERS | DAC | {"audrey", "dora"}),
    ("POST", "/api/grants/999999/revoke", {}, DAC),
    ("GET", "/api/datasets/{ds}/access-history", None, DAC | {"audrey", "dora"}),
    ("GET", "/api/users/alice/usable-datasets", None, {"alice", "insitu-hub"}),
    ("POST", "/api/sessions", {}, {"insitu-hub"}),
    ("GET", "/api/sessions/uncovered", None, {"insitu-hub"}),
    # insitu-admission: Kyverno's check reads a session, and may do nothing else
    ("GET", "/api/sessions/{sid}", None, {"alice", "insitu-hub", "audrey", "admin", "insitu-admission"}),
    ("DELETE", "/api/sessions/no-such-session", None, {"insitu-hub"}),
]


@pytest.mark.parametrize("method,path,body,allowed", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_matrix(governance_stack, world, method, path, body, allowed):
    st = governance_stack
    path = path.format(**world)
    before = st.sql("select count(*) from access_votes")[0][0], st.sql("select count(*) from work_sessions "
                                                                        "where closed_at is null")[0][0]
    for caller in CALLERS:
        with st.api(None if caller == "anonymous" else caller) as c:
            r = c.request(method, path, json=body)
        if caller == "anonymous":
            assert r.status_code == 401, (caller, r.text)
        elif caller in allowed:
            assert r.status_code not in (401, 403) and r.status_code < 500, (caller, r.status_code, r.text)
        else:
            assert r.status_code == 403, (caller, r.status_code, r.text)
    after = st.sql("select count(*) from access_votes")[0][0], st.sql("select count(*) from work_sessions "
                                                                       "where closed_at is null")[0][0]
    assert after == before


def test_researcher_sees_only_own_projects(governance_stack, world):
    st = governance_stack
    with st.api("bob") as c:
        assert world["rid"] not in [r["id"] for r in c.get("/api/access-requests").json()]
        assert world["ds"] not in [g["dataset_id"] for g in c.get("/api/grants").json()]
    with st.api("carol") as c:  # same project as the requester
        assert world["rid"] in [r["id"] for r in c.get("/api/access-requests").json()]
        assert world["ds"] in [g["dataset_id"] for g in c.get("/api/grants").json()]
