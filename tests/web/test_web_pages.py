"""The web pages without a browser: every page and form action × role, CSRF,
refusals rendered as 4xx pages with their reason, escaping of user text.

A logged-in browser holds the hub token in the service's signed session cookie;
here the cookie carries a hub token of the user, signed by the service (the real
OAuth login is exercised in test_web_browser.py). Every token is still resolved
by the real hub.
"""
from __future__ import annotations

import re

import httpx
import pytest

COOKIE = "insitu-dataset-service-session"
USERS = ["alice", "bob", "dora", "dac1", "dac3", "audrey", "admin", "nobody"]


@pytest.fixture
def st(governance_stack):
    return governance_stack


def browser(st, user: str | None) -> httpx.Client:
    cookies = {COOKIE: st.app.state.hub_auth.session_value(st.token(user))} if user else {}
    return httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False)


def csrf(client: httpx.Client, page: str = "/") -> str:
    r = client.get(page)
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', r.text)
    if m:
        return m.group(1)
    # pages without a form still carry the token in every form the user may see; build one from the catalogue
    r = client.get("/")
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', r.text)
    return m.group(1) if m else ""


def token_of(st, user: str) -> str:
    from dataset_service.web.csrf import csrf_key, make_token

    gs = st.app.state.governance_settings
    return make_token(csrf_key(gs.csrf_secret, st.app.state.settings.hub_api_token), st.token(user))


def request_count(st) -> int:
    return st.sql("select count(*) from access_requests")[0][0]


@pytest.fixture(scope="module")
def world(governance_stack):
    st = governance_stack
    released = st.add_dataset("Pages released", studies=[("pg-001", "s1", "CT", "CHEST", "lung")])
    draft = st.add_dataset("Pages draft", state="draft")
    with st.api("alice") as c:
        rid = c.post("/api/access-requests", json={"dataset_id": released, "project": "lung",
                                                   "purpose": "page tests", "duration_days": 5}).json()["id"]
    return {"released": released, "draft": draft, "rid": rid}


PAGES = [
    ("/", {"alice", "bob", "dora", "dac1", "dac3", "audrey", "admin"}),
    ("/datasets/{released}", {"alice", "bob", "dora", "dac1", "dac3", "audrey", "admin"}),
    ("/my/requests", {"alice", "bob", "admin"}),
    ("/my/grants", {"alice", "bob", "admin"}),
    ("/dac", {"dac1", "dac3", "admin"}),
    ("/manage", {"dora", "admin"}),
]


@pytest.mark.parametrize("path,allowed", PAGES, ids=[p for p, _ in PAGES])
def test_page_matrix(st, world, path, allowed):
    path = path.format(**world)
    with browser(st, None) as c:
        r = c.get(path)
        assert r.status_code == 302 and "/login?next=" in r.headers["location"]
    for user in USERS:
        with browser(st, user) as c:
            r = c.get(path)
        if user in allowed:
            assert r.status_code == 200, (user, r.status_code)
            assert "text/html" in r.headers["content-type"] and "<h1>" in r.text
            assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in \
                r.headers["content-security-policy"]
        else:
            assert r.status_code == 403 and "Not for your role" in r.text, (user, r.status_code)


FORMS = [
    ("/datasets/{released}/request", {"project": "lung", "purpose": "", "duration_days": "5"},
     {"alice", "bob", "admin"}),
    ("/my/requests/999999/withdraw", {}, {"alice", "bob", "admin"}),
    ("/my/requests/999999/resubmit", {"purpose": "x"}, {"alice", "bob", "admin"}),
    ("/dac/requests/999999/review", {"decision": "approve"}, {"dac1", "dac3", "admin"}),
    ("/dac/grants/999999/revoke", {"reason": "none"}, {"dac1", "dac3", "admin"}),
    ("/manage/datasets/no-such-dataset/state", {"state": "released"}, {"dora", "admin"}),
]


@pytest.mark.parametrize("path,data,allowed", FORMS, ids=[p for p, _, _ in FORMS])
def test_form_matrix(st, world, path, data, allowed):
    """Each form action: 401 without login, 403 without the CSRF token or the role;
    allowed callers get past both checks (and then a 4xx for the missing/invalid target)."""
    path = path.format(**world)
    before = request_count(st)
    with browser(st, None) as c:
        assert c.post(path, data=data).status_code == 401
    for user in USERS:
        with browser(st, user) as c:
            r = c.post(path, data=data)  # no token
            assert r.status_code == 403 and "security token" in r.text, (user, r.status_code)
            r = c.post(path, data={**data, "csrf_token": token_of(st, "admin" if user != "admin" else "alice")})
            assert r.status_code == 403 and "security token" in r.text, (user, "foreign token")
            r = c.post(path, data={**data, "csrf_token": token_of(st, user)})
        if user in allowed:
            assert 400 <= r.status_code < 500, (user, r.status_code, r.text[:300])
            assert "Not for your role" not in r.text and "security token" not in r.text
        else:
            assert r.status_code == 403 and "Not for your role" in r.text, (user, r.status_code)
    assert request_count(st) == before


def test_full_flow_through_forms_and_refusals(st, world):
    ds = st.add_dataset("Pages flow", studies=[("pf-001", "s1", "MR", "HEAD", "glioma")])
    with browser(st, "alice") as c:
        tok = csrf(c, f"/datasets/{ds}")
        assert tok == token_of(st, "alice")
        r = c.post(f"/datasets/{ds}/request", data={"csrf_token": tok, "project": "lung",
                                                     "purpose": "<script>alert(1)</script> segmentation",
                                                     "intended_use": "", "duration_days": "30"})
        assert r.status_code == 303 and r.headers["location"].endswith("/my/requests?notice=requested")
        page = c.get("/my/requests").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
        # a second request for the same project is refused with the reason, nothing added
        before = request_count(st)
        r = c.post(f"/datasets/{ds}/request", data={"csrf_token": tok, "project": "lung", "purpose": "again",
                                                     "duration_days": "30"})
        assert r.status_code == 409 and "already has a pending request" in r.text
        # unreleased dataset, foreign project, bad duration
        r = c.post(f"/datasets/{world['draft']}/request", data={"csrf_token": tok, "project": "lung",
                                                                 "purpose": "draft data", "duration_days": "30"})
        assert r.status_code == 409 and "draft" in r.text
        r = c.post(f"/datasets/{ds}/request", data={"csrf_token": tok, "project": "brain", "purpose": "not mine",
                                                     "duration_days": "30"})
        assert r.status_code == 403 and "not a member" in r.text
        r = c.post(f"/datasets/{ds}/request", data={"csrf_token": tok, "project": "lung", "purpose": "x" * 10,
                                                     "duration_days": "many"})
        assert r.status_code == 422
        assert request_count(st) == before
    rid = st.sql("select id from access_requests where dataset_id = :d", d=ds)[0][0]

    # self-review through the page: refused with the reason
    with browser(st, "dac3") as c:
        r = c.post(f"/dac/requests/{rid}/review", data={"csrf_token": token_of(st, "dac3"), "decision": "approve"})
        assert r.status_code == 403 and "cannot review" in r.text
    with browser(st, "dac1") as c:
        tok = token_of(st, "dac1")
        r = c.post(f"/dac/requests/{rid}/review", data={"csrf_token": tok, "decision": "reject", "reason": ""})
        assert r.status_code == 422 and "reason" in r.text
        r = c.post(f"/dac/requests/{rid}/review", data={"csrf_token": tok, "decision": "maybe"})
        assert r.status_code == 422
        r = c.post(f"/dac/requests/{rid}/review", data={"csrf_token": tok, "decision": "approve"})
        assert r.status_code == 303
        r = c.post(f"/dac/requests/{rid}/review", data={"csrf_token": tok, "decision": "approve"})
        assert r.status_code == 409 and "already voted" in r.text
        assert "1/2 approvals" in c.get("/dac").text
    with browser(st, "dac2") as c:
        r = c.post(f"/dac/requests/{rid}/review", data={"csrf_token": token_of(st, "dac2"), "decision": "approve"})
        assert r.status_code == 303
        r = c.post(f"/dac/requests/{rid}/review", data={"csrf_token": token_of(st, "dac2"), "decision": "reject",
                                                         "reason": "late"})
        assert r.status_code == 409 and "approved" in r.text
    gid = st.sql("select id from access_grants where request_id = :r", d=ds, r=rid)[0][0]
    with browser(st, "alice") as c:
        assert f'data-grant="{gid}"' in c.get("/my/grants").text

    # data manager invalidates the dataset from the page: first the confirmation (what it ends), a reason
    # is needed; then the grant ends
    with browser(st, "dora") as c:
        tok = token_of(st, "dora")
        r = c.post(f"/manage/datasets/{ds}/state", data={"csrf_token": tok, "state": "invalidated", "reason": ""})
        assert r.status_code == 303 and r.headers["location"].endswith(f"/manage/datasets/{ds}/invalidate?reason=")
        r = c.post(f"/manage/datasets/{ds}/invalidate", data={"csrf_token": tok, "reason": ""})
        assert r.status_code == 422
        r = c.post(f"/manage/datasets/{ds}/state", data={"csrf_token": tok, "state": "draft", "reason": "back"})
        assert r.status_code == 409
        r = c.post(f"/manage/datasets/{ds}/invalidate", data={"csrf_token": tok,
                                                               "reason": "consent withdrawn for one subject"})
        assert r.status_code == 303, r.text
    with browser(st, "alice") as c:
        page = c.get("/my/grants").text
        assert f'data-grant="{gid}"' not in page and "dataset invalidated" in page.lower()
    with st.api("insitu-hub") as api:
        assert ds not in [x["dataset_id"] for x in api.get("/api/users/alice/usable-datasets").json()]
    with browser(st, "dac1") as c:
        r = c.post(f"/dac/grants/{gid}/revoke", data={"csrf_token": token_of(st, "dac1"), "reason": "x"})
        assert r.status_code == 422


def test_release_from_manage_page_puts_dataset_in_catalogue(st):
    ds = st.add_dataset("Pages to release", state="draft")
    with browser(st, "alice") as c:
        assert "Pages to release" not in c.get("/").text
        assert c.get(f"/datasets/{ds}").status_code == 404
    with browser(st, "dora") as c:
        r = c.post(f"/manage/datasets/{ds}/state", data={"csrf_token": token_of(st, "dora"), "state": "released"})
        assert r.status_code == 303
    with browser(st, "alice") as c:
        assert "Pages to release" in c.get("/").text
        assert c.get(f"/datasets/{ds}").status_code == 200


def test_catalogue_search_and_filters(st):
    a = st.add_dataset("Zebra glioma MR", studies=[("zg-001", "s1", "MR", "HEAD", "glioma")], tags=["neuro"])
    b = st.add_dataset("Zebra liver CT", studies=[("zl-001", "s1", "CT", "ABDOMEN", "liver")], license="CC0-1.0")
    with browser(st, "bob") as c:
        page = c.get("/", params={"q": "zebra"}).text
        assert "Zebra glioma MR" in page and "Zebra liver CT" in page
        page = c.get("/", params={"q": "zebra", "modality": "CT"}).text
        assert "Zebra liver CT" in page and "Zebra glioma MR" not in page
        page = c.get("/", params={"q": "zebra", "cancer_type": "glioma"}).text
        assert "Zebra glioma MR" in page and "Zebra liver CT" not in page
        page = c.get("/", params={"license": "CC0-1.0"}).text
        assert "Zebra liver CT" in page and "Zebra glioma MR" not in page
        page = c.get("/", params={"q": "neuro"}).text
        assert "Zebra glioma MR" in page
        assert c.get("/", params={"q": "<b>x</b>"}).status_code == 200
        assert "No dataset matches" in c.get("/", params={"q": "no-such-word-anywhere"}).text
    assert a != b


def test_static_css_is_served_and_nothing_else(st):
    with httpx.Client(base_url=st.base) as c:
        r = c.get("/static/insitu.css")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
        assert c.get("/static/..%2Fpages.py").status_code == 404
        assert c.get("/static/pages.py").status_code == 404


def test_left_out_studies_and_files_are_shown_with_their_reasons(st):
    report = {"left_out_studies": [{"study": "sub-x/study-link", "reason": "holds a <symbolic link> out of the lake"}],
              "left_out_files": [{"path": "sub-y/st/se/junk.dcm", "reason": "no DICM preamble (not a DICOM Part 10 file)"}]}
    i = st.add_dataset("Left out", state="draft", report=report)
    with browser(st, "dora") as c:
        manage = c.get("/manage").text
        assert f'href="/services/dataset-service/datasets/{i}#left-out">1 study(ies), 1 file(s) left out' in manage
        page = c.get(f"/datasets/{i}").text
    assert 'id="left-out"' in page and "sub-x/study-link" in page and "sub-y/st/se/junk.dcm" in page
    assert "holds a &lt;symbolic link&gt; out of the lake" in page and "no DICM preamble" in page
    with st.api("dora") as c:
        assert c.get(f"/api/datasets/{i}").json()["report"] == report
