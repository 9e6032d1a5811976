"""The airlock's API against the real stack: JupyterHub identities, the tracer, the dataset service."""
from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from dataset_service.airlock.tracing import ExportTracing
from fixtures.jupyterhub import free_port

from airlock_files import dicom_bytes, npy_bytes, png_bytes

USERS = ["ayla", "bram", "cleo", "alice", "bob", "carol", "dora", "dac1", "dac2", "dac3", "audrey", "admin", "nobody"]
SERVICES = ["insitu-hub", "dataset-service", "tracer"]
REVIEWERS = {"dora", "dac1", "dac2", "dac3", "admin"}  # data-managers, dac, admins
EVERYONE = USERS + SERVICES + [None]  # None: no token at all


def submit(a, user: str, files: dict[str, bytes], session_id: str | None = None, **extra):
    for name, data in files.items():
        a.write(user, name, data)
    with a.api(user) as c:
        body = {"files": list(files), "justification": "figures and metrics for the paper", **extra}
        if session_id:
            body["session_id"] = session_id
        return c.post("/api/exports", json=body)


def review(a, user, rid, decision, reason=""):
    with a.api(user) as c:
        return c.post(f"/api/exports/{rid}/reviews", json={"decision": decision, "reason": reason})


@pytest.fixture(scope="module")
def session(airlock_stack):
    return airlock_stack.open_session("ayla", "exports-a")


def codes_of(view, name):
    f = next(f for f in view["files"] if f["name"] == name)
    return {x["code"] for x in f["findings"]}


def test_dicom_request_is_flagged(airlock_stack, session):
    r = submit(airlock_stack, "ayla", {"out/scan.dcm": dicom_bytes(), "out/notes.txt": b"all fine\n"}, session[0])
    assert r.status_code == 201, r.text
    v = r.json()
    assert codes_of(v, "out/scan.dcm") == {"dicom"} and codes_of(v, "out/notes.txt") == set()
    assert next(f for f in v["files"] if f["name"] == "out/scan.dcm")["severity"] == "high"


def test_volume_request_is_flagged(airlock_stack, session):
    r = submit(airlock_stack, "ayla", {"out/pred.npy": npy_bytes((48, 64, 64)), "out/small.npy": npy_bytes((4, 4))},
               session[0])
    assert r.status_code == 201, r.text
    assert "volume" in codes_of(r.json(), "out/pred.npy") and codes_of(r.json(), "out/small.npy") == set()


def test_file_changed_after_the_request_does_not_change_what_is_reviewed(airlock_stack, session):
    a = airlock_stack
    original = b"epoch,loss\n1,0.9\n2,0.5\n"
    r = submit(a, "ayla", {"out/curve.csv": original}, session[0])
    rid = r.json()["request_id"]
    frozen = r.json()["files"][0]
    assert frozen["sha256"] == hashlib.sha256(original).hexdigest()
    path = a.write("ayla", "out/curve.csv", dicom_bytes())  # swapped in the workspace after the request
    os.utime(path)
    with a.api("dora") as c:
        v = c.get(f"/api/exports/{rid}").json()
    assert v["files"][0]["sha256"] == frozen["sha256"] and v["files"][0]["findings"] == []
    assert v["files"][0]["preview"]["rows"] == [["1", "0.9"], ["2", "0.5"]]
    assert review(a, "dora", rid, "approve").json()["state"] == "approved"
    with a.api("ayla") as c:
        d = c.get(f"/api/exports/{rid}/files/{frozen['file_id']}")
    assert d.status_code == 200 and d.content == original
    assert d.headers["x-content-sha256"] == frozen["sha256"]


def test_requester_cannot_review_own_request_even_with_a_reviewer_role(airlock_stack, session):
    a = airlock_stack
    a.st.hub.add_user("rita", ["researchers", "dac", "project-exports-a"])
    r = submit(a, "rita", {"model/summary.json": b'{"auc": 0.91}'}, project="exports-a")
    assert r.status_code == 201, r.text
    rid = r.json()["request_id"]
    assert r.json()["can_review"] is False
    for decision, reason in (("approve", ""), ("reject", "mine"), ("return", "mine")):
        resp = review(a, "rita", rid, decision, reason)
        assert resp.status_code == 403 and "own" in resp.json()["detail"], resp.text
    # an admin passes every role check, but not this one
    r2 = submit(a, "admin", {"admin/x.json": b"{}"}, project="exports-a")
    assert r2.status_code == 201, r2.text
    assert review(a, "admin", r2.json()["request_id"], "approve").status_code == 403
    with a.api("dac1") as c:
        assert c.get(f"/api/exports/{rid}").json()["state"] == "pending"
    # a reviewer who is not the requester can
    assert review(a, "dac1", rid, "approve").json()["state"] == "approved"


def _make(a, session, state: str) -> tuple[str, int, int]:
    """A request of ayla in ``state``: (request id, file id of an image, file id of a table)."""
    r = submit(a, "ayla", {f"m/{state}/fig.png": png_bytes(), f"m/{state}/t.csv": b"group,n\nA,40\nB,51\n"},
               session[0])
    assert r.status_code == 201, r.text
    rid = r.json()["request_id"]
    ids = {f["name"].rsplit("/", 1)[-1]: f["file_id"] for f in r.json()["files"]}
    if state == "approved":
        assert review(a, "dac2", rid, "approve").json()["state"] == "approved"
    elif state == "rejected":
        assert review(a, "dac2", rid, "reject", "identifiable").json()["state"] == "rejected"
    elif state == "returned":
        assert review(a, "dac2", rid, "return", "crop the figure").json()["state"] == "returned"
    return rid, ids["fig.png"], ids["t.csv"]


@pytest.mark.parametrize("state", ["pending", "approved", "rejected", "returned"])
def test_permission_matrix(airlock_stack, session, state):
    a = airlock_stack
    rid, img, table = _make(a, session, state)

    def probe(who):
        with a.api(who) as c:
            return who, {
                "see": c.get(f"/api/exports/{rid}").status_code,
                "download": c.get(f"/api/exports/{rid}/files/{img}").status_code,
                "download_table": c.get(f"/api/exports/{rid}/files/{table}").status_code,
                "preview": c.get(f"/api/exports/{rid}/files/{img}/preview.png").status_code,
                # a reject without reason: 422 for a reviewer (nothing changes), 403 for anyone else
                "review": c.post(f"/api/exports/{rid}/reviews", json={"decision": "reject", "reason": ""}).status_code,
            }

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(probe, EVERYONE))
    for who, got in results:
        if who is None:
            assert set(got.values()) == {401}, (who, got)
            continue
        expect_see = 200 if (who in REVIEWERS or who in ("ayla", "audrey")) else 403
        expect_dl = 200 if (who == "ayla" and state == "approved") else 403
        expect_preview = 200 if who in REVIEWERS else 403
        if who in REVIEWERS:
            expect_review = 422 if state == "pending" else 409
        else:
            expect_review = 403
        assert got == {"see": expect_see, "download": expect_dl, "download_table": expect_dl,
                       "preview": expect_preview, "review": expect_review}, (who, state, got)
    with a.api("dora") as c:
        assert c.get(f"/api/exports/{rid}").json()["state"] == state  # the probes changed nothing


def test_previews_go_to_reviewers_only_and_are_not_the_file(airlock_stack, session):
    a = airlock_stack
    rid, img, table = _make(a, session, "pending")
    with a.api("dac1") as c:
        v = c.get(f"/api/exports/{rid}").json()
        p = c.get(f"/api/exports/{rid}/files/{img}/preview.png")
    assert p.status_code == 200 and p.headers["content-type"] == "image/png" and p.content != png_bytes()
    assert next(f for f in v["files"] if f["file_id"] == table)["preview"]["header"] == ["group", "n"]
    for who in ("ayla", "audrey"):
        with a.api(who) as c:
            assert all("preview" not in f for f in c.get(f"/api/exports/{rid}").json()["files"])


def test_quorum_of_two(airlock_stack, session):
    a = airlock_stack
    al = a.airlock
    old = al.settings
    al.settings = old.model_copy(update={"quorum": 2})
    try:
        r = submit(a, "ayla", {"q/fig.png": png_bytes(64, 64)}, session[0])
    finally:
        al.settings = old
    rid, fid = r.json()["request_id"], r.json()["files"][0]["file_id"]
    assert r.json()["quorum"] == 2
    assert review(a, "dac1", rid, "approve").json()["state"] == "pending"
    assert review(a, "dac1", rid, "approve").status_code == 409  # the same reviewer twice counts once
    with a.api("ayla") as c:
        assert c.get(f"/api/exports/{rid}/files/{fid}").status_code == 403
    assert review(a, "dora", rid, "approve").json()["state"] == "approved"
    with a.api("ayla") as c:
        assert c.get(f"/api/exports/{rid}/files/{fid}").status_code == 200
    assert review(a, "dac2", rid, "reject", "too late").status_code == 409


def test_return_for_changes_and_replace(airlock_stack, session):
    a = airlock_stack
    rid, _, _ = _make(a, session, "returned")
    with a.api("ayla") as c:
        v = c.get(f"/api/exports/{rid}").json()
    assert v["decision_reason"] == "crop the figure"
    r = submit(a, "ayla", {"m/returned/fig2.png": png_bytes(100, 80)}, session[0], replaces=rid)
    assert r.status_code == 201 and r.json()["replaces"] == rid
    # a pending or foreign request cannot be replaced
    r2 = submit(a, "ayla", {"m/x.txt": b"x"}, session[0], replaces=r.json()["request_id"])
    assert r2.status_code == 409
    r3 = submit(a, "bram", {"m/y.txt": b"y"}, replaces=rid)
    assert r3.status_code == 400


def test_bad_requests_are_refused_and_change_nothing(airlock_stack, session, tmp_path):
    a = airlock_stack
    home = a.home("ayla")
    (tmp_path / "outside.dcm").write_bytes(dicom_bytes())
    if not (home / "evil").is_symlink():
        os.symlink(tmp_path / "outside.dcm", home / "evil")
    a.write("ayla", "ok.txt", b"fine")
    a.write("ayla", "huge.bin", b"\0" * (a.settings.max_file_size + 1))
    with a.api("ayla") as c:
        before = len(c.get("/api/exports", params={"mine": True}).json())
        n_traces = len(a.traces(action="REQUEST_EXPORT"))
        cases = [
            ({"files": ["ok.txt", "../bob/x"], "justification": "long enough text"}, 400),
            ({"files": ["ok.txt", "/etc/passwd"], "justification": "long enough text"}, 400),
            ({"files": ["ok.txt", "evil"], "justification": "long enough text"}, 400),
            ({"files": ["ok.txt", "huge.bin"], "justification": "long enough text"}, 400),
            ({"files": ["ok.txt", "missing.txt"], "justification": "long enough text"}, 400),
            ({"files": ["ok.txt", "ok.txt"], "justification": "long enough text"}, 422),
            ({"files": ["ok.txt"], "justification": "short"}, 422),
            ({"files": [], "justification": "long enough text"}, 422),
            ({"files": ["ok.txt"], "justification": "long enough text", "extra": 1}, 422),
            ({"files": ["ok.txt"], "justification": "long enough text", "project": "exports-b"}, 403),
            ({"files": ["ok.txt"], "justification": "long enough text", "session_id": "nope"}, 400),
            ({"files": ["ok.txt"], "justification": "long enough text", "session_id": "../x"}, 422),
        ]
        for body, status in cases:
            r = c.post("/api/exports", json=body)
            assert r.status_code == status, (body, r.text)
            assert "detail" in r.json()
        refused = c.post("/api/exports", json=cases[2][0]).json()["detail"]["refused"]
        assert refused == [{"file": "evil", "reason": "symlinks are not accepted: name the file itself"}]
        assert len(c.get("/api/exports", params={"mine": True}).json()) == before
    assert len(a.traces(action="REQUEST_EXPORT")) == n_traces
    # somebody else's session, and callers who are not researchers
    bram_session = a.open_session("bram", "exports-b")[0]
    with a.api("ayla") as c:
        r = c.post("/api/exports", json={"files": ["ok.txt"], "justification": "long enough text",
                                         "session_id": bram_session})
        assert r.status_code == 400
    for who in ("dora", "audrey", "nobody", "insitu-hub"):
        with a.api(who) as c:
            r = c.post("/api/exports", json={"files": ["ok.txt"], "justification": "long enough text"})
            assert r.status_code == 403, who


def test_tracer_down_refuses_and_records_nothing(airlock_stack, session):
    a = airlock_stack
    al = a.airlock
    good = al.tracing
    al.tracing = ExportTracing(f"http://127.0.0.1:{free_port()}/services/tracer", "x", "k", retries=1, timeout=2)
    try:
        with a.api("ayla") as c:
            before = len(c.get("/api/exports", params={"mine": True}).json())
        r = submit(a, "ayla", {"t/ok.txt": b"ok"}, session[0])
        assert r.status_code == 503 and "tracer" in r.json()["detail"]
        with a.api("ayla") as c:
            assert len(c.get("/api/exports", params={"mine": True}).json()) == before
    finally:
        al.tracing = good
    rid, img, _ = _make(a, session, "pending")
    al.tracing = ExportTracing(f"http://127.0.0.1:{free_port()}/services/tracer", "x", "k", retries=1, timeout=2)
    try:
        assert review(a, "dac1", rid, "approve").status_code == 503
    finally:
        al.tracing = good
    with a.api("ayla") as c:
        assert c.get(f"/api/exports/{rid}").json()["state"] == "pending"


def test_every_step_is_traced_with_digests_and_session_linkage(airlock_stack, session):
    a = airlock_stack
    sid, ds = session
    data = {"paper/fig1.png": png_bytes(120, 90), "paper/table.csv": b"group,n\nA,40\nB,51\n"}
    r = submit(a, "ayla", data, sid)
    rid = r.json()["request_id"]
    review(a, "dac3", rid, "approve")
    fid = r.json()["files"][0]["file_id"]
    with a.api("ayla") as c:
        assert c.get(f"/api/exports/{rid}/files/{fid}").status_code == 200
    digests = {n: hashlib.sha256(b).hexdigest() for n, b in data.items()}
    mine = [t["trace"] for t in a.traces() if t["trace"]["details"].get("request_id") == rid]
    by_action = {t["action"]: t for t in mine}
    assert set(by_action) == {"REQUEST_EXPORT", "APPROVE_EXPORT", "DOWNLOAD_EXPORT"}
    for action in ("REQUEST_EXPORT", "APPROVE_EXPORT"):
        t = by_action[action]
        assert t["digests"] == digests and t["dataset_ids"] == [ds]
        assert t["details"]["session_id"] == sid
    assert by_action["DOWNLOAD_EXPORT"]["digests"] == {"paper/fig1.png": digests["paper/fig1.png"]}
    # the auditor's match: released file digest -> request -> session -> USE_DATASETS of that session
    use = [t["trace"] for t in a.traces(action="USE_DATASETS") if t["trace"]["details"].get("session_id") == sid]
    assert len(use) == 1 and use[0]["dataset_ids"] == [ds]
    assert by_action["REQUEST_EXPORT"]["user"] == use[0]["user"]  # the same pseudonym
    assert "ayla" not in str(mine) and "figures and metrics" not in str(mine)
    # rejection is traced too, with the outcome
    r2 = submit(a, "ayla", {"paper/raw.npy": npy_bytes((40, 40, 40))}, sid)
    review(a, "dora", r2.json()["request_id"], "reject", "image volume")
    rej = [t["trace"] for t in a.traces(action="REJECT_EXPORT")
           if t["trace"]["details"].get("request_id") == r2.json()["request_id"]]
    assert len(rej) == 1 and rej[0]["details"]["outcome"] == "rejected"
    assert rej[0]["digests"] == {"paper/raw.npy": hashlib.sha256(npy_bytes((40, 40, 40))).hexdigest()}


def test_listing_scopes(airlock_stack, session):
    a = airlock_stack
    submit(a, "cleo", {"c/x.txt": b"cleo's"}, project="exports-a")
    with a.api("cleo") as c:
        assert {x["requester"] for x in c.get("/api/exports").json()} == {"cleo"}
    with a.api("bram") as c:
        assert all(x["requester"] == "bram" for x in c.get("/api/exports").json())
    with a.api("dac1") as c:
        assert {"ayla", "cleo"} <= {x["requester"] for x in c.get("/api/exports").json()}
    with a.api("insitu-hub") as c:
        assert c.get("/api/exports").status_code == 403
