"""The auditor's name → pseudonym lookup: auditors only, traced before it answers (real hub, real tracer)."""
from __future__ import annotations

import re

import httpx
import pytest

from insitu.trace_client import pseudonym

from test_governance_api import KEY, traces

COOKIE = "insitu-dataset-service-session"


@pytest.fixture
def st(governance_stack):
    return governance_stack


def lookups(st):
    return [t["trace"] for t in traces(st, action="LOOKUP_PSEUDONYM")]


def test_api_lookup_is_for_auditors_and_traced(st):
    before = len(lookups(st))
    with st.api("audrey") as c:
        r = c.post("/api/audit/pseudonyms", json={"login": "alice", "reason": "data holder asked about export 7"})
    assert r.status_code == 200, r.text
    assert r.json()["pseudonym"] == pseudonym("alice", KEY)
    got = lookups(st)
    assert len(got) == before + 1
    t = got[-1]
    assert t["id"] == r.json()["trace_id"] and t["user"] == pseudonym("audrey", KEY)
    assert t["details"]["looked_up"] == pseudonym("alice", KEY) and len(t["details"]["reason_sha256"]) == 64
    assert "alice" not in str(t) and "export 7" not in str(t)
    for user in ("alice", "dac1", "dora"):
        with st.api(user) as c:
            assert c.post("/api/audit/pseudonyms", json={"login": "bob", "reason": "just curious about bob"}
                          ).status_code == 403
    with st.api("audrey") as c:
        r = c.post("/api/audit/pseudonyms", json={"login": "bob", "reason": "why"})
        assert r.status_code == 422
    assert len(lookups(st)) == before + 1  # refusals trace nothing and answer nothing


def test_lookup_page(st):
    cookie = {COOKIE: st.app.state.hub_auth.session_value(st.token("audrey"))}
    with httpx.Client(base_url=st.base, cookies=cookie, timeout=30) as c:
        form = c.get("/audit/people")
        assert form.status_code == 200 and 'id="lookup-form"' in form.text
        tok = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form.text).group(1)
        short = c.post("/audit/people", data={"csrf_token": tok, "login": "carol", "reason": "short"})
        assert short.status_code == 422 and 'id="lookup-error"' in short.text and 'value="carol"' in short.text
        r = c.post("/audit/people", data={"csrf_token": tok, "login": "carol", "reason": "audit of project lung"})
        assert r.status_code == 200 and pseudonym("carol", KEY) in r.text
        assert f'href="/services/tracer/?user={pseudonym("carol", KEY)}"' in r.text
        assert c.post("/audit/people", data={"csrf_token": "0" * 64, "login": "carol",
                                             "reason": "audit of project lung"}).status_code == 403
    alice = {COOKIE: st.app.state.hub_auth.session_value(st.token("alice"))}
    with httpx.Client(base_url=st.base, cookies=alice, timeout=30) as c:
        assert c.get("/audit/people").status_code == 403
