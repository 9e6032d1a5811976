"""``dataset_service.client`` (docs/CONTRACTS.md §3) against the real service,
through the hub's proxy as the spawner calls it: sync and async."""
from __future__ import annotations

import pytest

from dataset_service.client import (DatasetServiceClient, DatasetServiceRejected, DatasetServiceUnavailable,
                                    SessionRefused)
from fixtures.jupyterhub import free_port


def grant(st, ds, user="alice", project="lung"):
    with st.api(user) as c:
        rid = c.post("/api/access-requests", json={"dataset_id": ds, "project": project, "purpose": "client test",
                                                   "duration_days": 7}).json()["id"]
    for dac in ("dac1", "dac2"):
        with st.api(dac) as c:
            c.post(f"/api/access-requests/{rid}/votes", json={"decision": "approve"})
    with st.api("dac1") as c:
        return c.get("/api/grants", params={"dataset_id": ds}).json()[0]["id"]


def test_client_contract_sync(governance_stack):
    st = governance_stack
    ds = st.add_dataset("Client sync")
    gid = grant(st, ds)
    hub = DatasetServiceClient(st.public, st.token("insitu-hub"))  # through the hub's proxy
    rows = hub.usable_datasets("alice")
    row = next(r for r in rows if r["dataset_id"] == ds)
    assert set(row) == {"dataset_id", "name", "version", "project", "gid", "manifest_root", "expires_at"}

    sess = hub.open_session("alice", "lung", [ds], "cpu")
    assert sess["user"] == "alice" and [d["dataset_id"] for d in sess["datasets"]] == [ds]
    assert hub.get_session(sess["session_id"])["open"] is True

    with pytest.raises(SessionRefused) as e:
        hub.open_session("bob", "lung", [ds], "cpu")
    assert "not a member" in e.value.reason and e.value.refused == [{"dataset_id": ds,
                                                                      "reason": "user not in project"}]
    with st.api("dac1") as c:
        c.post(f"/api/grants/{gid}/revoke", json={"reason": "client test"})
    assert sess["session_id"] in [u["session_id"] for u in hub.uncovered_sessions()]
    hub.close_session(sess["session_id"])
    hub.close_session("no-such-session")  # a 404 is not an error when closing
    assert hub.get_session(sess["session_id"])["open"] is False
    assert sess["session_id"] not in [u["session_id"] for u in hub.uncovered_sessions()]

    # governance calls with people's tokens
    dac = DatasetServiceClient(st.public, st.token("dac2"))
    assert [g["status"] for g in dac.grants(dataset_id=ds)] == ["revoked"]
    assert dac.grants(dataset_id=ds, active=True) == []
    with pytest.raises(DatasetServiceRejected) as e:
        dac.revoke_grant(gid, "again")
    assert e.value.status == 409
    hist = DatasetServiceClient(st.public, st.token("audrey")).access_history(ds)
    assert [x["session_id"] for x in hist["sessions"]] == [sess["session_id"]]
    with pytest.raises(DatasetServiceRejected) as e:
        DatasetServiceClient(st.public, st.token("bob")).access_history(ds)
    assert e.value.status == 403

    # a user may not open sessions; another user's datasets are not theirs to list
    alice = DatasetServiceClient(st.public, st.token("alice"))
    with pytest.raises(DatasetServiceRejected) as e:
        alice.open_session("alice", "lung", [ds], "cpu")
    assert e.value.status == 403 and "insitu-hub" in str(e.value.detail)
    with pytest.raises(DatasetServiceRejected):
        alice.usable_datasets("bob")
    with pytest.raises(DatasetServiceUnavailable):
        DatasetServiceClient(f"http://127.0.0.1:{free_port()}", "x", timeout=2).usable_datasets("alice")


async def test_client_contract_async(governance_stack):
    st = governance_stack
    ds = st.add_dataset("Client async")
    grant(st, ds, user="bob", project="brain")
    hub = DatasetServiceClient(st.base, st.token("insitu-hub"))
    assert ds in [r["dataset_id"] for r in await hub.ausable_datasets("bob")]
    sess = await hub.aopen_session("bob", "brain", [ds], "gpu")
    assert (await hub.aget_session(sess["session_id"]))["profile"] == "gpu"
    with pytest.raises(SessionRefused):
        await hub.aopen_session("bob", "brain", [ds, "ds-none"], "gpu")
    await hub.aclose_session(sess["session_id"])
    assert (await hub.aget_session(sess["session_id"]))["open"] is False
    assert sess["session_id"] not in [u["session_id"] for u in await hub.auncovered_sessions()]
