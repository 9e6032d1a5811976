"""Committee pages: a page per request with every round, vote and change (and a diff between rounds),
reject-without-reason shown in the form, revoke that says which workspaces it stops, the decided table
with reasons and links, and "granted until" / "pending" / "ask for an extension" instead of a second
request. Real hub, real tracer, the service's real pages (httpx carries a user's signed session cookie)."""
from __future__ import annotations

import re

import pytest

from test_web_pages import browser, token_of


@pytest.fixture
def st(governance_stack):
    return governance_stack


@pytest.fixture(autouse=True)
def _end_new_grants(governance_stack):
    """The stack is shared by every module: grants this test made end with it (test clean-up), so tests
    that count a user's usable datasets elsewhere are not affected."""
    st = governance_stack
    before = st.sql("select coalesce(max(id), 0) from access_grants")[0][0]
    open_before = {r[0] for r in st.sql("select id from work_sessions where closed_at is null")}
    yield
    st.sql("update access_grants set revoked_at = :now, revoked_by = 'test-cleanup', revoke_reason = 'test ended' "
           "where id > :b and revoked_at is null", now=__import__("datetime").datetime.now(
               __import__("datetime").timezone.utc), b=before)
    for (sid,) in st.sql("select id from work_sessions where closed_at is null"):
        if sid not in open_before:
            st.sql("update work_sessions set closed_at = :now where id = :i", i=sid,
                   now=__import__("datetime").datetime.now(__import__("datetime").timezone.utc))


def ask(st, ds, user="alice", project="lung", purpose="Train a nodule detector on chest CT.", **extra):
    with st.api(user) as c:
        r = c.post("/api/access-requests", json={"dataset_id": ds, "project": project, "purpose": purpose,
                                                 "duration_days": 30, **extra})
    return r


def review(st, user, rid, decision, reason=""):
    with browser(st, user) as c:
        return c.post(f"/dac/requests/{rid}/review", data={"csrf_token": token_of(st, user), "decision": decision,
                                                         "reason": reason})


def test_request_page_shows_every_round_and_a_diff(st):
    ds = st.add_dataset("DAC history")
    rid = ask(st, ds, purpose="Train a nodule detector on all chest CT.").json()["id"]
    assert review(st, "dac1", rid, "changes", "Say which subset of the cohort you need.").status_code == 303
    with st.api("alice") as c:
        r = c.post(f"/api/access-requests/{rid}/resubmit",
                   json={"purpose": "Train a nodule detector on stage I chest CT only.", "duration_days": 45})
        assert r.status_code == 200, r.text
        assert [x["round"] for x in r.json()["rounds"]] == [1, 2]
    assert review(st, "dac2", rid, "approve", "Narrow enough now.").status_code == 303
    with browser(st, "dac1") as c:
        queue = c.get("/dac").text
        card = queue[queue.index(f'id="request-{rid}"'):]
        card = card[:card.index("</li>")]
        assert "Round 1: <b>dac1</b> asked for changes: Say which subset" in card
        assert re.search(r"<ins>[^<]*stage I[^<]*</ins>", card) and re.search(r"<del>[^<]*all[^<]*</del>", card)
        page = c.get(f"/requests/{rid}")
    assert page.status_code == 200
    t = page.text
    assert 'id="round-1"' in t and 'id="round-2"' in t and "Changed since round 1" in t
    assert re.search(r"<del>30</del>\s*<ins>45</ins>", t)  # the duration changed too
    assert "Say which subset of the cohort you need." in t and "Narrow enough now." in t
    events = re.findall(r"<b>([a-z -]+)</b>", t[t.index('id="events"'):])
    assert events[:3] == ["submitted", "changes requested", "resubmitted"] and "approved" in events
    for user, status in (("alice", 200), ("carol", 200), ("audrey", 200), ("bob", 404), ("dora", 403)):
        with browser(st, user) as c:
            assert c.get(f"/requests/{rid}").status_code == status, user
    with browser(st, "dac1") as c:
        assert c.get("/requests/999999").status_code == 404


def test_reject_without_reason_is_answered_in_the_form(st):
    ds = st.add_dataset("DAC reject")
    rid = ask(st, ds).json()["id"]
    r = review(st, "dac1", rid, "reject", "  ")
    assert r.status_code == 422
    assert f'id="review-error-{rid}"' in r.text and "reason of at least 3 characters" in r.text
    assert 'id="pending-h"' in r.text  # the committee page itself, not a separate error page
    assert st.sql("select count(*) from access_votes where request_id = :r", r=rid)[0][0] == 0
    r = review(st, "dac1", rid, "changes", "")
    assert r.status_code == 422 and "ask for changes" in r.text
    # the reject form itself requires the reason
    with browser(st, "dac1") as c:
        page = c.get("/dac").text
    form = page[page.index(f'id="objection-{rid}"') - 200:page.index(f'id="objection-{rid}"') + 200]
    assert "required" in form and 'minlength="3"' in form


def test_revoke_says_which_workspaces_it_stops_then_revokes(st):
    ds = st.add_dataset("DAC revoke")
    rid = ask(st, ds).json()["id"]
    review(st, "dac1", rid, "approve")
    review(st, "dac2", rid, "approve")
    gid = st.sql("select id from access_grants where request_id = :r", r=rid)[0][0]
    with st.api("insitu-hub") as c:
        sess = c.post("/api/sessions", json={"user": "carol", "project": "lung", "dataset_ids": [ds],
                                             "profile": "notebook-cpu"}).json()
    with browser(st, "dac1") as c:
        dac = c.get("/dac").text
        assert f'href="/services/dataset-service/dac/grants/{gid}/revoke"' in dac
        page = c.get(f"/dac/grants/{gid}/revoke")
        assert page.status_code == 200 and 'id="running"' in page.text
        assert "carol" in page.text and "Revoke and stop 1 workspace(s)" in page.text
        assert st.sql("select revoked_at from access_grants where id = :g", g=gid)[0][0] is None  # nothing yet
        r = c.post(f"/dac/grants/{gid}/revoke", data={"csrf_token": token_of(st, "dac1"),
                                                      "reason": "ethics approval withdrawn"})
        assert r.status_code == 303
        assert c.get(f"/dac/grants/{gid}/revoke").status_code == 409
    with st.api("insitu-hub") as c:
        unc = {x["session_id"]: x for x in c.get("/api/sessions/uncovered").json()}
    assert unc[sess["session_id"]]["end_reason"] == "revoked"
    with browser(st, "alice") as c:
        assert c.get(f"/dac/grants/{gid}/revoke").status_code == 403


def test_decided_table_has_reasons_and_links(st):
    ds = st.add_dataset("DAC decided")
    rid = ask(st, ds).json()["id"]
    assert review(st, "dac1", rid, "reject", "No ethics approval attached.").status_code == 303
    with browser(st, "dac2") as c:
        t = c.get("/dac").text
    row = re.search(rf'<tr data-request="{rid}">(.*?)</tr>', t, re.S).group(1)
    assert f'href="/services/dataset-service/requests/{rid}"' in row
    assert f'href="/services/dataset-service/datasets/{ds}"' in row
    assert "dac1: No ethics approval attached." in row


def test_second_request_shows_grant_pending_and_extension(st):
    ds = st.add_dataset("DAC extension")
    rid = ask(st, ds).json()["id"]
    with browser(st, "alice") as c:
        t = c.get(f"/datasets/{ds}").text
        assert 'id="pending-lung"' in t and f"/requests/{rid}" in t
        assert 'id="purpose"' not in t  # no second request while one is pending
    r = ask(st, ds)
    assert r.status_code == 409 and "pending" in r.text
    review(st, "dac1", rid, "approve")
    review(st, "dac2", rid, "approve")
    gid = st.sql("select id from access_grants where request_id = :r", r=rid)[0][0]
    with browser(st, "alice") as c:
        t = c.get(f"/datasets/{ds}").text
    assert 'id="held-lung"' in t and "holds a grant until" in t and 'href="/hub/spawn"' in t
    assert 'name="extends_grant_id" value="%d"' % gid in t and "Ask for an extension" in t
    assert 'id="purpose"' not in t  # no plain new request: alice's only project holds the dataset
    r = ask(st, ds)
    assert r.status_code == 409 and "ask for an extension of grant" in r.text
    with st.api("alice") as c:
        other = c.post("/api/access-requests", json={"dataset_id": ds, "project": "lung", "purpose": "more time",
                                                     "duration_days": 30, "extends_grant_id": gid + 1000})
        assert other.status_code == 422
    # the extension through the page's form
    with browser(st, "alice") as c:
        r = c.post(f"/datasets/{ds}/request", data={"csrf_token": token_of(st, "alice"), "project": "lung",
                                                    "extends_grant_id": str(gid), "purpose": "The analysis needs "
                                                    "another month.", "duration_days": "30"})
        assert r.status_code == 303, r.text
        t = c.get(f"/datasets/{ds}").text
    assert 'id="held-lung"' in t and 'id="pending-lung"' in t and "an extension" in t
    assert "Ask for an extension" not in t  # one pending request at a time
    with browser(st, "dac1") as c:
        assert f"<b>extension</b> of grant #{gid}" in c.get("/dac").text
    # carol (lung and brain): lung holds it, brain may still ask
    with browser(st, "carol") as c:
        t = c.get(f"/datasets/{ds}").text
    assert '<option value="brain">' in t and '<option value="lung">' not in t
