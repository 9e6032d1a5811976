"""Refusals reported by a workspace gateway are traced (issue 11, item 3).

A real JupyterHub resolves every token, the real tracer takes the trace: the
user enters only as a pseudonym, the path only as a digest, and only the hub's
own service may report (a researcher cannot add or forge refusals).
"""
from __future__ import annotations

import hashlib

import pytest

from insitu.trace_client import pseudonym
from test_governance_api import KEY, granted, open_session, traces


@pytest.fixture
def st(governance_stack):
    return governance_stack


def test_a_reported_refusal_is_traced_with_pseudonym_session_and_digest(st):
    ds = st.add_dataset("Refusal cohort")
    granted(st, ds)
    sess = open_session(st, "alice", "lung", [ds]).json()
    digest = hashlib.sha256(b"api/contents/scan.dcm").hexdigest()
    body = {"kind": "dicom", "channel": "contents", "path_digest": digest}
    with st.api("insitu-hub") as c:
        r = c.post(f"/api/sessions/{sess['session_id']}/refusals", json=body)
    assert r.status_code == 201, r.text
    (t,) = [x["trace"] for x in traces(st, dataset=ds, action="REFUSE_DOWNLOAD")]
    assert t["user"] == pseudonym("alice", KEY)
    assert t["details"]["session_id"] == sess["session_id"]
    assert t["details"]["path_digest"] == digest and t["details"]["kind"] == "dicom"
    assert "alice" not in str(t) and "scan.dcm" not in str(t)


def test_only_the_hub_reports_refusals_and_bad_input_is_a_4xx(st):
    ds = st.add_dataset("Refusal cohort 2")
    granted(st, ds)
    sess = open_session(st, "alice", "lung", [ds]).json()
    good = {"kind": "dicom", "channel": "contents", "path_digest": "a" * 64}
    for who in ("alice", "dac1"):
        with st.api(who) as c:
            assert c.post(f"/api/sessions/{sess['session_id']}/refusals", json=good).status_code == 403
    with st.api("insitu-hub") as c:
        assert c.post("/api/sessions/no-such-session/refusals", json=good).status_code == 404
        for bad in ({**good, "path_digest": "scan.dcm"}, {**good, "kind": "<b>"}, {"kind": "dicom"}):
            assert c.post(f"/api/sessions/{sess['session_id']}/refusals", json=bad).status_code == 422
    assert traces(st, dataset=ds, action="REFUSE_DOWNLOAD") == []
