"""Access governance on PostgreSQL 15 (production's database): migrations, row
locks for simultaneous reviews, time comparisons with timestamptz, sessions.
The hub and the tracer are the real ones of ``governance_stack``."""
from __future__ import annotations

import datetime as dt
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest


pytestmark = pytest.mark.postgres


# pg_url: a fresh database in the session's throwaway cluster (tests/fixtures/postgres.py)


@pytest.fixture(scope="module")
def pg_app(pg_url, governance_stack, tmp_path_factory):
    from fastapi.testclient import TestClient

    from dataset_service.app import create_app

    settings = governance_stack.app.state.settings.model_copy(update={"database_url": pg_url})
    app = create_app(settings, recover_builds=False)
    with TestClient(app) as client:
        yield app, client


def call(client, st, user, method, path, **kw):
    return client.request(method, st.app.state.settings.service_prefix + path,
                          headers={"Authorization": f"token {st.token(user)}"}, **kw)


def add_dataset(app) -> str:
    from dataset_service.models import Dataset, DatasetState

    ds_id = "pg-" + secrets.token_hex(4)
    with app.state.db.session() as s:
        s.add(Dataset(id=ds_id, name="PG cohort", state=DatasetState.released, gid=260000 + secrets.randbelow(9999),
                      created_by="dora", merkle_root=secrets.token_hex(32), build_phase="done"))
    return ds_id


def test_governance_on_postgres(pg_app, governance_stack):
    app, client = pg_app
    st = governance_stack
    ds = add_dataset(app)
    r = call(client, st, "alice", "POST", "/api/access-requests",
             json={"dataset_id": ds, "project": "lung", "purpose": "postgres run", "duration_days": 3})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    # simultaneous approvals: the row lock serialises them, the quorum is reached once
    with ThreadPoolExecutor(2) as pool:
        res = list(pool.map(lambda u: call(client, st, u, "POST", f"/api/access-requests/{rid}/votes",
                                           json={"decision": "approve"}), ["dac1", "dac2"]))
    assert [r.status_code for r in res] == [200, 200]
    r = call(client, st, "dac1", "GET", f"/api/access-requests/{rid}")
    assert r.json()["state"] == "approved" and r.json()["grant_id"]
    assert call(client, st, "dac1", "POST", f"/api/access-requests/{rid}/votes",
                json={"decision": "approve"}).status_code == 409

    r = call(client, st, "insitu-hub", "POST", "/api/sessions",
             json={"user": "alice", "project": "lung", "dataset_ids": [ds], "profile": "cpu"})
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    assert [x["dataset_id"] for x in call(client, st, "insitu-hub", "GET",
                                          "/api/users/alice/usable-datasets").json()] == [ds]
    # the grant ran out: timestamptz comparison in SQL
    from sqlalchemy import text

    with app.state.db.session() as s:
        s.execute(text("update access_grants set valid_until = :t where request_id = :r"),
                  {"t": dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5), "r": rid})
    assert call(client, st, "insitu-hub", "GET", "/api/users/alice/usable-datasets").json() == []
    unc = call(client, st, "insitu-hub", "GET", "/api/sessions/uncovered").json()
    assert [u["session_id"] for u in unc] == [sid] and "expired" in unc[0]["reason"]
    r = call(client, st, "insitu-hub", "POST", "/api/sessions",
             json={"user": "alice", "project": "lung", "dataset_ids": [ds]})
    assert r.status_code == 403 and r.json()["detail"]["refused"][0]["reason"] == "the grant has expired"
    assert call(client, st, "insitu-hub", "DELETE", f"/api/sessions/{sid}").status_code == 204
    assert call(client, st, "insitu-hub", "GET", "/api/sessions/uncovered").json() == []
