"""Audit reports and the pseudonym prefix filter, on a real trace store (SQLite) and, for the
pages, the real tracer behind a real JupyterHub with a real anvil chain (test_tracer_web's stack)."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from insitu.trace_client import make_trace, pseudonym
from tracer import reports
from tracer.db import make_engine, upgrade
from tracer.store import TraceStore

KEY = b"reports-key"


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 't.sqlite'}")
    upgrade(engine)
    yield TraceStore(engine)
    engine.dispose()


def at(h: int) -> datetime:
    return datetime(2026, 3, 1, h, 0, tzinfo=timezone.utc)


def fill(store: TraceStore) -> dict:
    alice, bob = pseudonym("alice", KEY), pseudonym("bob", KEY)
    t = [
        make_trace("GRANT_ACCESS", caller="dataset-service", user=None, dataset_ids=["ds-a"],
                   details={"project": "lung", "grant_id": 1}, time=at(1)),
        make_trace("USE_DATASETS", caller="dataset-service", user=alice, dataset_ids=["ds-a"],
                   details={"project": "lung", "session_id": "s1"}, time=at(2)),
        make_trace("END_SESSION", caller="dataset-service", user=alice, dataset_ids=["ds-a"],
                   details={"project": "lung", "session_id": "s1", "reason": "revoked"}, time=at(3)),
        make_trace("USE_DATASETS", caller="dataset-service", user=bob, dataset_ids=["ds-a", "ds-b"],
                   details={"project": "lung", "session_id": "s2"}, time=at(4)),
        make_trace("START_FAILED", caller="dataset-service", user=bob, dataset_ids=["ds-a", "ds-b"],
                   details={"project": "lung", "session_id": "s2", "reason": "failed_start"}, time=at(5)),
        make_trace("USE_DATASETS", caller="dataset-service", user=bob, dataset_ids=["ds-b"],
                   details={"project": "lung-2", "session_id": "s3"}, time=at(6)),
        make_trace("REQUEST_EXPORT", caller="dataset-service", user=alice, dataset_ids=["ds-a"],
                   details={"project": "lung", "export_id": "=HYPERLINK(1)"}, time=at(7)),
    ]
    store.add_many(t)
    return {"alice": alice, "bob": bob, "t": t}


def test_user_filter_matches_the_shown_prefix(store):
    w = fill(store)
    alice, bob = w["alice"], w["bob"]
    assert {r["trace"]["user"] for r in store.query(user=alice[:12])} == {alice}
    assert len(store.query(user=alice[:12])) == len(store.query(user=alice)) == 3
    assert len(store.query(user=alice.upper()[:12])) == 3  # the pages show lower case; either is taken
    assert store.query(user="zz") == [] and store.query(user="%") == [] and store.query(user=alice[:12] + "_") == []


def test_dataset_usage_report_sessions_and_csv(store):
    w = fill(store)
    rep = reports.dataset_usage(store, "ds-a")
    assert [r["action"] for r in rep["rows"]] == ["GRANT_ACCESS", "USE_DATASETS", "END_SESSION", "USE_DATASETS",
                                                  "START_FAILED", "REQUEST_EXPORT"]
    how = {s["session_id"]: (s["user"], s["how"], bool(s["ended"])) for s in rep["sessions"]}
    assert how == {"s1": (w["alice"], "revoked", True), "s2": (w["bob"], "failed start", True)}
    assert rep["users"] == 2 and rep["projects"] == ["lung"] and len(rep["exports"]) == 1
    assert rep["pending"] == 6  # nothing anchored in this store
    rows = list(csv.DictReader(io.StringIO(reports.rows_csv(rep["rows"]))))
    assert [r["trace_id"] for r in rows] == [r["trace_id"] for r in rep["rows"]]
    assert rows[2]["reason"] == "revoked" and rows[0]["leaf"].startswith("0x")
    exp = rows[-1]["details"]
    assert json.loads(exp) == {"export_id": "=HYPERLINK(1)"}  # inside JSON: not at the start of the cell
    lines = [json.loads(x) for x in reports.rows_jsonl(rep["rows"]).splitlines()]
    assert lines == rep["rows"]


def test_csv_cells_never_start_a_formula():
    rows = [dict.fromkeys(reports.FIELDS, "") | {"reason": "=cmd|'/c calc'!A1", "project": "+1", "user": "@x"}]
    out = list(csv.reader(io.StringIO(reports.rows_csv(rows))))[1]
    assert all(not c.startswith(("=", "+", "@", "-")) for c in out)
    assert "'=cmd|'/c calc'!A1" in out


def test_project_timeline_is_exact(store):
    fill(store)
    rep = reports.project_timeline(store, "lung")
    assert len(rep["rows"]) == 6 and {r["project"] for r in rep["rows"]} == {"lung"}  # not lung-2
    assert rep["datasets"] == ["ds-a", "ds-b"] and len(rep["sessions"]) == 2
    assert [r["action"] for r in reports.project_timeline(store, "lung-2")["rows"]] == ["USE_DATASETS"]
    assert reports.project_timeline(store, "lun")["rows"] == []


# --- the pages, through the real tracer -------------------------------------------------------
from test_tracer_web import page, web  # noqa: E402,F401  (module-scoped real stack)


def test_report_pages_and_exports(web):
    bob = web["bob"]
    with page(web, "audrey") as c:
        r = c.get("/reports/dataset/web-a")
        assert r.status_code == 200 and "Usage of" in r.text and 'id="sessions"' in r.text
        assert f'href="/services/tracer/?user={bob}"' in r.text and "anchored" in r.text
        rows = list(csv.DictReader(io.StringIO(c.get("/reports/dataset/web-a", params={"format": "csv"}).text)))
        assert rows and all(x["status"] == "anchored" and x["tx_hash"].startswith("0x") for x in rows)
        assert {x["datasets"] for x in rows} == {"web-a"}
        jl = c.get("/reports/dataset/web-a", params={"format": "jsonl"})
        assert jl.headers["content-type"].startswith("application/x-ndjson") and len(jl.text.splitlines()) == len(rows)
        assert c.get("/reports/dataset/web-a", params={"format": "xml"}).status_code == 400
        assert c.get("/reports/dataset/%3Cscript%3E").status_code == 400
        assert c.get("/reports/project/a%20b").status_code == 400
        # the list's user filter takes the 12 characters it shows; the CSV export follows the filter
        listed = c.get("/", params={"user": bob[:12]}).text
        assert bob[:12] in listed and web["alice"][:12] not in listed
        exp = list(csv.DictReader(io.StringIO(c.get("/export.csv", params={"user": bob[:12]}).text)))
        assert exp and {x["user"] for x in exp} == {bob}
    with page(web, "alice") as c:  # not an auditor
        assert c.get("/reports/dataset/web-a").status_code == 403
        assert c.get("/export.csv").status_code == 403
