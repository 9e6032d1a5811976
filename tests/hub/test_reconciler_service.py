"""The revocation reconciler against the real dataset service and tracer.

A grant is made through the governance API (a researcher asks, two DAC members
approve), the hub opens a session with it (as the spawner does), the grant is
revoked, and one reconciler pass closes the session: the service then reports
it closed and the tracer holds its END_SESSION. A session still covered is
left open.
"""

from __future__ import annotations

import asyncio

from hub.reconciler import HubAPI, RevocationReconciler, dataset_service_client


def _grant(stack, dataset_id: str, project: str = "lung") -> int:
    req = stack.api("alice").post("/api/access-requests", json={
        "dataset_id": dataset_id, "project": project, "purpose": "reconciler test", "duration_days": 30})
    assert req.status_code == 201, req.text
    rid = req.json()["id"]
    for dac in ("dac1", "dac2"):
        r = stack.api(dac).post(f"/api/access-requests/{rid}/votes", json={"decision": "approve", "reason": "ok"})
        assert r.status_code == 200, r.text
    grant_id = r.json()["grant_id"]
    assert grant_id
    return grant_id


def _open(stack, dataset_id: str) -> str:
    r = stack.api("insitu-hub").post("/api/sessions", json={
        "user": "alice", "project": "lung", "dataset_ids": [dataset_id], "profile": "notebook-cpu"})
    assert r.status_code == 201, r.text
    return r.json()["session_id"]


def test_revoked_grant_session_is_closed_and_traced(governance_stack):
    stack = governance_stack
    ds_revoked = stack.add_dataset(name="Reconciler revoked")
    ds_kept = stack.add_dataset(name="Reconciler kept")
    g_revoked = _grant(stack, ds_revoked)
    _grant(stack, ds_kept)
    sid_revoked, sid_kept = _open(stack, ds_revoked), _open(stack, ds_kept)

    token = stack.hub.service_tokens["insitu-hub"]
    rec = RevocationReconciler(HubAPI(stack.hub.api_url, token),
                               dataset_service_client(f"http://127.0.0.1:{stack.port}", token))
    report = asyncio.run(rec.run_once())
    assert sid_revoked not in report.closed and sid_kept not in report.closed

    r = stack.api("dac1").post(f"/api/grants/{g_revoked}/revoke", json={"reason": "reconciler test"})
    assert r.status_code == 200, r.text
    uncovered = stack.api("insitu-hub").get("/api/sessions/uncovered").json()
    assert sid_revoked in {u["session_id"] for u in uncovered}

    report = asyncio.run(rec.run_once())
    assert report.error is None
    assert sid_revoked in report.closed and sid_kept not in report.closed
    assert stack.api("insitu-hub").get(f"/api/sessions/{sid_revoked}").json()["open"] is False
    assert stack.api("insitu-hub").get(f"/api/sessions/{sid_kept}").json()["open"] is True
    assert sid_revoked not in {u["session_id"] for u in stack.api("insitu-hub").get("/api/sessions/uncovered").json()}
    ends = stack.tracer.traces(stack.token("audrey"), action="END_SESSION", dataset=ds_revoked)
    assert ends, "END_SESSION was not traced"

    # clean up the session that is still covered
    assert stack.api("insitu-hub").delete(f"/api/sessions/{sid_kept}").status_code == 204
