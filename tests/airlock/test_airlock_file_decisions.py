"""OpenSAFELY-style output checking: per-file decisions with comments, two independent reviewers when any
file has a High finding (quorum configurable), one table of states and moves; 'returned' traced as its own
action. Against the real stack (hub identities, tracer, dataset service), through the API and the page."""
from __future__ import annotations

import re

import pytest

from airlock_files import dicom_bytes, png_bytes
from test_airlock_api import review, submit


@pytest.fixture(scope="module")
def session(airlock_stack):
    return airlock_stack.open_session("ayla", "exports-a")


def files_of(view) -> dict[str, int]:
    return {f["name"]: f["file_id"] for f in view["files"]}


def decide(a, user, rid, decisions: list[dict], **extra):
    with a.api(user) as c:
        return c.post(f"/api/exports/{rid}/reviews", json={"files": decisions, **extra})


def test_a_high_finding_needs_two_independent_reviewers(airlock_stack, session):
    a = airlock_stack
    r = submit(a, "ayla", {"h2/scan.dcm": dicom_bytes(), "h2/notes.txt": b"counts only\n"}, session[0])
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["quorum"] == 2 and v["high"] is True
    rid = v["request_id"]
    assert review(a, "dac1", rid, "approve").json()["state"] == "pending"  # one reviewer is not enough
    assert review(a, "dac1", rid, "approve").status_code == 409  # nor the same one twice
    assert review(a, "dora", rid, "approve").json()["state"] == "approved"
    # without a High finding one approval suffices (settings.quorum = 1 here)
    r = submit(a, "ayla", {"h2/fig.png": png_bytes(64, 64)}, session[0])
    assert r.json()["quorum"] == 1
    assert review(a, "dac1", r.json()["request_id"], "approve").json()["state"] == "approved"
    # the quorum is configurable: high_quorum 3
    al = a.airlock
    old = al.settings
    al.settings = old.model_copy(update={"high_quorum": 3})
    try:
        r = submit(a, "ayla", {"h3/scan.dcm": dicom_bytes()}, session[0])
    finally:
        al.settings = old
    assert r.json()["quorum"] == 3


def test_per_file_decisions_with_comments(airlock_stack, session):
    a = airlock_stack
    r = submit(a, "ayla", {"pf/fig.png": png_bytes(64, 64), "pf/table.csv": b"group,n\nA,120\nB,98\n",
                           "pf/notes.txt": b"method notes\n"}, session[0])
    v = r.json()
    rid, ids = v["request_id"], files_of(v)
    before = len(a.traces(action="RETURN_EXPORT"))
    # bad input: 422 with the reason, nothing recorded
    for bad, why in (([{"file_id": ids["pf/fig.png"], "decision": "approve"}], "decide every file"),
                     ([{"file_id": i, "decision": "reject"} for i in ids.values()], "say why it cannot leave"),
                     ([{"file_id": i, "decision": "approve"} for i in ids.values()]
                      + [{"file_id": 999999, "decision": "approve"}], "not in this request")):
        got = decide(a, "dac1", rid, bad)
        assert got.status_code == 422 and why in got.text, got.text
    got = decide(a, "dac1", rid, [{"file_id": i, "decision": "approve"} for i in ids.values()], decision="reject")
    assert got.status_code == 422 and "make this review 'approve'" in got.text
    got = decide(a, "dac1", rid, [{"file_id": ids["pf/fig.png"], "decision": "approve"},
                                  {"file_id": ids["pf/fig.png"], "decision": "reject"}])
    assert got.status_code == 422  # a file decided twice
    with a.api("ayla") as c:
        assert c.get(f"/api/exports/{rid}").json()["reviews"] == []

    # a mix: the request is returned, each file carries its decision and comment, traced as RETURN_EXPORT
    got = decide(a, "dac1", rid, [
        {"file_id": ids["pf/fig.png"], "decision": "approve", "comment": "fine"},
        {"file_id": ids["pf/table.csv"], "decision": "reject", "comment": "group B under 100: merge groups"},
        {"file_id": ids["pf/notes.txt"], "decision": "approve"}])
    assert got.status_code == 200, got.text
    v = got.json()
    assert v["state"] == "returned" and v["decision_reason"] == "pf/table.csv: group B under 100: merge groups"
    by_name = {f["name"]: f["decisions"] for f in v["files"]}
    assert by_name["pf/table.csv"] == [{"reviewer": "dac1", "file_id": ids["pf/table.csv"], "decision": "reject",
                                        "comment": "group B under 100: merge groups"}]
    assert by_name["pf/fig.png"][0]["decision"] == "approve"
    traces = [t["trace"] for t in a.traces(action="RETURN_EXPORT")]
    assert len(traces) == before + 1
    mine = next(t for t in traces if t["details"].get("request_id") == rid)
    approved_digests = {f["sha256"] for f in v["files"] if f["name"] != "pf/table.csv"}
    assert set(mine["details"]["files_approved"]) == approved_digests
    assert not [t for t in a.traces(action="REJECT_EXPORT") if t["trace"]["details"].get("request_id") == rid]
    # the requester reads the comments
    with a.api("ayla") as c:
        seen = c.get(f"/api/exports/{rid}").json()
    assert any(d["comment"] == "group B under 100: merge groups" for f in seen["files"] for d in f["decisions"])

    # every file approved is an approval; every file rejected a rejection
    r = submit(a, "ayla", {"pf2/fig.png": png_bytes(32, 32)}, session[0])
    rid2, fid2 = r.json()["request_id"], r.json()["files"][0]["file_id"]
    assert decide(a, "dac2", rid2, [{"file_id": fid2, "decision": "approve"}]).json()["state"] == "approved"
    r = submit(a, "ayla", {"pf3/fig.png": png_bytes(40, 40)}, session[0])
    rid3, fid3 = r.json()["request_id"], r.json()["files"][0]["file_id"]
    got = decide(a, "dac2", rid3, [{"file_id": fid3, "decision": "reject", "comment": "shows a face"}])
    assert got.json()["state"] == "rejected"
    assert [t for t in a.traces(action="REJECT_EXPORT") if t["trace"]["details"].get("request_id") == rid3]


def test_states_and_moves_live_in_one_table():
    from dataset_service.airlock import states

    assert states.STATES == ("pending", "approved", "rejected", "returned")
    for s in states.ExportState:
        for t in states.ExportState:
            allowed = s == states.ExportState.pending and t != s
            try:
                states.check_transition(s.value, t.value)
                assert allowed, (s, t)
            except states.TransitionRefused:
                assert not allowed, (s, t)
    assert states.TRACE_ACTION[states.Decision.return_].value == "RETURN_EXPORT"
    assert states.required_approvals(1, 2, ["low", None]) == 1
    assert states.required_approvals(1, 2, ["low", "high"]) == 2
    assert states.required_approvals(3, 2, ["high"]) == 3


def test_the_review_page_decides_file_by_file(airlock_stack, session):
    a = airlock_stack
    st = a.st
    r = submit(a, "ayla", {"pg/fig.png": png_bytes(48, 48), "pg/model.txt": b"weights summary\n"}, session[0])
    rid, ids = r.json()["request_id"], files_of(r.json())
    import httpx

    cookies = {"insitu-dataset-service-session": st.app.state.hub_auth.session_value(st.token("dora"))}
    with httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False) as c:
        page = c.get(f"/exports/{rid}")
        assert page.status_code == 200 and 'id="per-file"' in page.text
        tok = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        # a file rejected without a comment: the page again with the reason, nothing changed
        r = c.post(f"/exports/{rid}/review", data={"csrf_token": tok, "decision": "files",
                                                   f"file-{ids['pg/fig.png']}": "approve",
                                                   f"file-{ids['pg/model.txt']}": "reject"})
        assert r.status_code == 400 and "say why it cannot leave" in r.text
        r = c.post(f"/exports/{rid}/review", data={"csrf_token": tok, "decision": "files",
                                                   f"file-{ids['pg/fig.png']}": "approve",
                                                   f"comment-{ids['pg/fig.png']}": "ok",
                                                   f"file-{ids['pg/model.txt']}": "reject",
                                                   f"comment-{ids['pg/model.txt']}": "may encode images"})
        assert r.status_code == 303
        page = c.get(f"/exports/{rid}").text
    row = page[page.index('data-file="pg/model.txt"'):]
    assert 'data-reviewer="dora" data-decision="reject"' in row and "may encode images" in row
    with a.api("ayla") as c:
        assert c.get(f"/api/exports/{rid}").json()["state"] == "returned"


def test_ask_again_after_a_return_starts_from_the_returned_request_and_shows_the_reviewer_what_changed(
        airlock_stack, session):
    import httpx

    a = airlock_stack
    st = a.st
    r = submit(a, "ayla", {"again/fig.png": png_bytes(50, 50), "again/table.csv": b"group,n\nA,120\nB,3\n"},
               session[0])
    rid, ids = r.json()["request_id"], files_of(r.json())
    got = decide(a, "dac1", rid, [{"file_id": ids["again/fig.png"], "decision": "approve"},
                                  {"file_id": ids["again/table.csv"], "decision": "reject",
                                   "comment": "B has 3 people: suppress small counts"}])
    assert got.json()["state"] == "returned"

    def page_client(user):
        cookies = {"insitu-dataset-service-session": st.app.state.hub_auth.session_value(st.token(user))}
        return httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False)

    with page_client("ayla") as c:
        detail = c.get(f"/exports/{rid}").text
        assert f'href="/services/dataset-service/exports/new?replaces={rid}"' in detail
        form = c.get("/exports/new", params={"replaces": rid})
        assert form.status_code == 200 and 'id="ask-again"' in form.text
        assert "B has 3 people: suppress small counts" in form.text
        assert f'name="replaces" value="{rid}"' in form.text
        assert re.search(r'value="again/fig.png"\s+checked', form.text)  # kept
        assert not re.search(r'value="again/table.csv"\s+checked', form.text)  # the rejected file left unticked
        assert "figures and metrics for the paper" in form.text  # the justification
        tok = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        a.write("ayla", "again/table.csv", b"group,n\nA,120\nB+C,123\n")
        r = c.post("/exports/new", data={"csrf_token": tok, "replaces": rid, "files": ["again/fig.png", "again/table.csv"],
                                         "justification": "figures and merged-group metrics for the paper",
                                         "session_id": session[0]})
        assert r.status_code == 303, r.text
        new = r.headers["location"].rsplit("/", 1)[1]
        # asking again for a request that is not returned, or not one's own: a plain refusal on the form
        assert c.get("/exports/new", params={"replaces": new}).status_code == 409
    with page_client("bram") as c:
        r = c.get("/exports/new", params={"replaces": rid})
        assert r.status_code == 404 and "no such export request of yours" in r.text
    with a.api("ayla") as c:
        assert c.get(f"/api/exports/{new}").json()["replaces"] == rid
    with page_client("dac2") as c:
        page = c.get(f"/exports/{new}").text
    changes = page[page.index('id="changes"'):]
    assert '<li data-change="changed"><code>again/table.csv</code>' in changes
    assert '<li data-change="same"><code>again/fig.png</code>' in changes
    assert re.search(r"<ins>[^<]*merged-group[^<]*</ins>", changes) and "B has 3 people" in changes


def test_a_16x32x32_volume_is_flagged_on_submission(airlock_stack, session):
    from airlock_files import npy_bytes

    r = submit(airlock_stack, "ayla", {"vol/crop.npy": npy_bytes((16, 32, 32))}, session[0])
    assert r.status_code == 201, r.text
    v = r.json()
    assert "volume" in {x["code"] for x in v["files"][0]["findings"]} and v["quorum"] == 2


def test_airlock_refusals_are_pages_with_a_plain_reason_not_raw_json(airlock_stack, session):
    import httpx

    a = airlock_stack
    st = a.st
    r = submit(a, "ayla", {"err/fig.png": png_bytes(30, 30)}, session[0])
    rid, fid = r.json()["request_id"], r.json()["files"][0]["file_id"]

    def page_client(user):
        cookies = {"insitu-dataset-service-session": st.app.state.hub_auth.session_value(st.token(user))}
        return httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False)

    checks = [("bram", "GET", f"/exports/{rid}", {}, 403, "not your export request"),
              ("ayla", "GET", "/exports/00000000-0000-0000-0000-000000000000", {}, 404, "no such export request"),
              ("ayla", "GET", f"/exports/{rid}/files/{fid}/download", {}, 403, "only approved files"),
              ("dac1", "GET", "/exports/new", {}, 403, "Only researchers ask for exports"),
              ("dac1", "POST", f"/exports/{rid}/review", {"csrf_token": "forged", "decision": "approve"}, 403,
               "The form expired"),
              ("ayla", "POST", "/exports/new", {"csrf_token": "forged", "files": ["err/fig.png"]}, 403,
               "The form expired")]
    for user, method, path, data, status, words in checks:
        with page_client(user) as c:
            r = c.request(method, path, data=data or None)
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html") and words in r.text, (path, r.text[:500])
    with a.api("ayla") as c:
        assert c.get(f"/api/exports/{rid}").json()["reviews"] == []  # nothing changed


def test_reviewers_see_previews_of_arrays_dicom_headers_and_notebooks_and_the_requester_does_not(
        airlock_stack, session):
    import io
    import json

    import httpx
    import numpy as np
    from PIL import Image

    from airlock_files import npy_bytes

    a = airlock_stack
    st = a.st
    vol = np.arange(6 * 40 * 40, dtype=np.float32).reshape(6, 40, 40)
    buf = io.BytesIO()
    np.save(buf, vol)
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "source": ["auc = evaluate(model)\n", "print(auc)"], "metadata": {},
         "execution_count": 1, "outputs": [
             {"output_type": "stream", "name": "stdout", "text": ["0.812\n"]},
             {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}]}]}
    r = submit(a, "ayla", {"pv/vol.npy": buf.getvalue(), "pv/scan.dcm": dicom_bytes(),
                           "pv/analysis.ipynb": json.dumps(nb).encode(), "pv/flat.npy": npy_bytes((10,))}, session[0])
    rid, ids = r.json()["request_id"], files_of(r.json())
    with a.api("dac1") as c:
        v = c.get(f"/api/exports/{rid}").json()
        png = c.get(f"/api/exports/{rid}/files/{ids['pv/vol.npy']}/preview.png")
        assert c.get(f"/api/exports/{rid}/files/{ids['pv/flat.npy']}/preview.png").status_code == 422
    prev = {f["name"]: f.get("preview") for f in v["files"]}
    arr = prev["pv/vol.npy"]
    assert arr["shape"] == [6, 40, 40] and arr["dtype"] == "float32" and arr["min"] == 0 and arr["max"] == vol.max()
    assert abs(arr["mean"] - float(vol.mean())) < 1e-6 and arr["image"] is True
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(io.BytesIO(png.content))
    assert im.size == (40, 40) and im.getpixel((0, 0)) == 0 and im.getpixel((39, 39)) == 255  # the middle slice
    dcm = prev["pv/scan.dcm"]
    assert dcm["type"] == "dicom" and any(row[1] == "PatientID" for row in dcm["elements"])
    assert not any(row[1] == "PixelData" for row in dcm["elements"])
    book = prev["pv/analysis.ipynb"]
    assert book["cells"][0]["source"].startswith("auc = evaluate(model)")
    assert {"kind": "text", "text": "0.812\n"} in book["cells"][0]["outputs"]
    assert any(o["kind"] == "image" for o in book["cells"][0]["outputs"])
    with a.api("ayla") as c:  # the requester sees no preview, and no picture
        assert all("preview" not in f for f in c.get(f"/api/exports/{rid}").json()["files"])
        assert c.get(f"/api/exports/{rid}/files/{ids['pv/vol.npy']}/preview.png").status_code == 403
    cookies = {"insitu-dataset-service-session": st.app.state.hub_auth.session_value(st.token("dac1"))}
    with httpx.Client(base_url=st.base, cookies=cookies, timeout=30) as c:
        page = c.get(f"/exports/{rid}").text
    assert "float32 6×40×40" in page and "DICOM header" in page and "0.812" in page


def test_a_draft_can_be_discarded_from_the_exports_page(airlock_stack, session):
    import httpx

    from test_airlock_browser import run_export_command

    a = airlock_stack
    st = a.st
    home = a.home("ayla")
    a.write("ayla", "dr/fig.png", png_bytes(20, 20))
    draft = run_export_command(home, session[0], "dr/fig.png", justification="a figure for the poster")
    path = home / ".insitu" / "exports" / f"{draft}.json"
    assert path.is_file()
    cookies = {"insitu-dataset-service-session": st.app.state.hub_auth.session_value(st.token("ayla"))}
    with httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False) as c:
        page = c.get("/exports").text
        assert f'data-draft="{draft}"' in page
        tok = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = c.post(f"/exports/drafts/{draft}/discard", data={"csrf_token": "forged"})
        assert r.status_code == 403 and path.is_file()
        r = c.post(f"/exports/drafts/{draft}/discard", data={"csrf_token": tok})
        assert r.status_code == 303 and not path.exists()
        assert f'data-draft="{draft}"' not in c.get("/exports").text
        r = c.post(f"/exports/drafts/{draft}/discard", data={"csrf_token": tok})
        assert r.status_code == 404 and "no such export draft" in r.text
        r = c.post("/exports/drafts/NOT-HEX/discard", data={"csrf_token": tok})
        assert r.status_code == 400 and "malformed draft id" in r.text
    # a draft name that is a symlink to another file: refused, the target untouched
    target = a.write("ayla", "dr/keep.txt", b"keep me\n")
    link = home / ".insitu" / "exports" / ("ab" * 8 + ".json")
    link.symlink_to(target)
    with httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False) as c:
        r = c.post(f"/exports/drafts/{'ab' * 8}/discard", data={"csrf_token": tok})  # the same login's token
    assert r.status_code == 404 and target.read_bytes() == b"keep me\n" and link.is_symlink()
