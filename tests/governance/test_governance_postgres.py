"""Access governance on PostgreSQL 15 (production's database): migrations, row
locks for simultaneous reviews, time comparisons with timestamptz, sessions.
The hub and the tracer are the real ones of ``governance_stack``."""
from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fixtures.jupyterhub import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
pytestmark = pytest.mark.postgres


def _as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + list(cmd), capture_output=True, text=True)


@pytest.fixture(scope="module")
def pg_url():
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed")
    d = Path(tempfile.mkdtemp(prefix="insitu-gov-pg-"))
    os.chmod(d, 0o755)
    data, sock = d / "data", d / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    r = _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    assert r.returncode == 0, r.stderr
    port = free_port()
    r = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(d / "log"), "-w", "-t", "60", "-o",
                     f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    assert r.returncode == 0, r.stderr + (d / "log").read_text()
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(d, ignore_errors=True)


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
