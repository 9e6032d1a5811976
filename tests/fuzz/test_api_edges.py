"""Issue 19, each finding sent again as the request that broke it, against the real stack (a real
JupyterHub with configurable-http-proxy resolving every token, the real tracer, the dataset service).

- integers of 2^63 and more in path and query parameters answer 422 (anonymous and logged in);
- the tracer's cursor, out-of-range time filters and a number as a date-time answer 422;
- date-times carry their UTC offset; hand-written 422s have FastAPI's list shape;
- 405 lists every allowed method; bodies above the limit answer 413 (a 40 MB body, declared or streamed);
- /health and /metrics answer platform services only; /openapi.json and /docs are public;
- the specs declare the limits, enums, lengths, security schemes, error answers and content types.
"""
from __future__ import annotations

import re

import httpx
import pytest

BIG = str(2**63)  # 9223372036854775808
HUGE = "9999999999999999999"
OFFSET_RE = re.compile(r"(Z|[+-]\d\d:\d\d)$")


@pytest.fixture(scope="module")
def st(governance_stack):
    return governance_stack


@pytest.fixture(scope="module")
def published(st):
    return st.add_dataset("Published cohort", state="published")


def is_validation_list(r: httpx.Response) -> bool:
    detail = r.json().get("detail")
    return isinstance(detail, list) and bool(detail) and all({"loc", "msg", "type"} <= set(d) for d in detail)


@pytest.mark.parametrize("path", [
    f"/api/public/datasets?offset={BIG}",
    f"/api/public/datasets?limit={BIG}",
])
def test_big_integers_anonymous_answer_422(st, path):
    for base in (st.base, st.public):  # the service itself and through the hub's proxy
        r = httpx.get(base + path, timeout=30)
        assert r.status_code == 422 and is_validation_list(r), r.text


@pytest.mark.parametrize("user,method,path", [
    ("dora", "GET", f"/api/datasets?offset={BIG}"),
    ("dora", "GET", f"/api/catalogue/studies?offset={BIG}"),
    ("dora", "GET", f"/api/index-runs/{BIG}"),
    ("dac1", "POST", f"/api/grants/{BIG}/revoke"),
    ("dac1", "GET", f"/api/access-requests/{BIG}"),
    ("dac1", "POST", f"/api/access-requests/{BIG}/votes"),
    ("dac1", "POST", f"/api/access-requests/{BIG}/changes"),
    ("alice", "POST", f"/api/access-requests/{BIG}/resubmit"),
    ("alice", "POST", f"/api/access-requests/{BIG}/withdraw"),
    ("alice", "GET", f"/api/exports/00000000-0000-0000-0000-000000000000/files/{BIG}"),
    ("alice", "GET", f"/api/exports/{BIG}"),
])
def test_big_integers_with_a_token_answer_4xx_not_500(st, user, method, path):
    with st.api(user) as c:
        r = c.request(method, path, json={"reason": "a valid reason", "decision": "approve", "purpose": "x" * 10,
                                          "duration_days": 5})
    expected = 404 if path == f"/api/exports/{BIG}" else 422  # export ids are uuids: an unknown one is 404
    assert r.status_code == expected, (path, r.status_code, r.text)
    if expected == 422:
        assert is_validation_list(r), r.text


@pytest.mark.parametrize("params", [
    {"cursor": HUGE},
    {"cursor": BIG},
    {"since": "0001-01-01T00:00:00+14:00"},
    {"until": "9999-12-31T23:59:59-14:00"},
    {"until": "0.5"},
    {"since": "1700000000"},
    {"since": "2026-01-01T00:00:00"},  # no timezone
])
def test_tracer_filters_answer_422(st, params):
    r = httpx.get(st.tracer.url + "/traces", params=params, headers={"Authorization": f"token {st.token('audrey')}"},
                  timeout=30)
    assert r.status_code == 422 and is_validation_list(r), (params, r.text)
    ok = httpx.get(st.tracer.url + "/traces", params={"since": "2026-01-01T00:00:00+14:00"},
                   headers={"Authorization": f"token {st.token('audrey')}"}, timeout=30)
    assert ok.status_code == 200, ok.text


def test_date_times_carry_their_offset(st, published):
    r = httpx.get(st.base + "/api/public/datasets", timeout=30)
    items = r.json()["items"]
    assert items and all(OFFSET_RE.search(d["created_at"]) for d in items), items
    assert OFFSET_RE.search(httpx.get(st.base + f"/api/public/datasets/{published}", timeout=30).json()["created_at"])
    with st.api("dora") as c:
        for d in c.get("/api/datasets").json()["items"]:
            assert OFFSET_RE.search(d["created_at"]) and OFFSET_RE.search(d["updated_at"]), d
        c.patch(f"/api/datasets/{published}", json={"description": "now with an event"})
        events = c.get(f"/api/datasets/{published}/events").json()
        assert events and all(OFFSET_RE.search(e["at"]) for e in events), events


def test_hand_written_422s_have_the_list_shape(st, published):
    with st.api("dora") as c:
        cases = [
            c.get("/api/datasets", params={"limit": 501}),
            c.get("/api/datasets", params={"state": "nonsense"}),
            c.patch(f"/api/datasets/{published}", json={"license": None}),
            c.patch(f"/api/datasets/{published}", json={"license": None, "description": False}),  # was a 500
            c.post("/api/datasets", json={"name": "x", "study_ids": ["a/b"], "all_studies": True}),
            c.post("/api/datasets", json={"name": "x"}),
            c.get("/api/catalogue/studies", params={"date_from": "not-a-date"}),
        ]
    with st.api("dac1") as c:
        cases += [c.get("/api/access-requests", params={"state": "unknown"}),
                  c.post("/api/grants/1/revoke", json={"reason": "  "})]
    with st.api("alice") as c:
        cases += [c.post("/api/exports", json={"files": ["a.txt"], "justification": "short"}),
                  c.post("/api/exports", json={"files": ["a.txt", "a.txt"], "justification": "long enough text"})]
    for r in cases:
        assert r.status_code == 422 and is_validation_list(r), (r.request.url, r.status_code, r.text)


def test_405_lists_every_allowed_method(st):
    with st.api("dora") as c:
        r = c.put("/api/datasets")
        assert r.status_code == 405
        assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}, r.headers
        r = c.delete("/api/datasets/some-id")
        assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "PATCH"}, r.headers


def _forty_mb():
    chunk = b"x" * (1024 * 1024)
    for _ in range(40):
        yield chunk


@pytest.mark.parametrize("streamed", [False, True])
def test_40_mb_bodies_answer_413_on_every_service(st, streamed):
    before = st.sql("select count(*) from datasets")[0][0]
    targets = [(st.base + "/api/datasets", st.token("dora")), (st.base + "/api/exports", st.token("alice")),
               (st.public + "/api/datasets", st.token("dora")),
               (st.tracer.url + "/traces", st.token("dataset-service"))]
    for url, token in targets:
        body = _forty_mb() if streamed else b"x" * (40 * 1024 * 1024)
        try:
            r = httpx.post(url, content=body, timeout=60,
                           headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        except httpx.HTTPError as e:  # the server may close while the rest is still being sent
            pytest.fail(f"{url}: no answer to a 40 MB body: {e!r}")
        assert r.status_code == 413, (url, r.status_code, r.text[:300])
        assert "too large" in r.text or "at most" in r.text, r.text
    assert st.sql("select count(*) from datasets")[0][0] == before


@pytest.mark.parametrize("path", ["/health", "/metrics"])
def test_health_and_metrics_answer_platform_services_only(st, path):
    url = st.tracer.url + path
    assert httpx.get(url, timeout=30).status_code == 401
    for user in ("alice", "audrey", "admin"):
        r = httpx.get(url, headers={"Authorization": f"token {st.token(user)}"}, timeout=30)
        assert r.status_code == 403, (user, r.status_code)
    r = httpx.get(url, headers={"Authorization": f"token {st.token('insitu-hub')}"}, timeout=30)
    assert r.status_code == 200, r.text
    if path == "/metrics":
        assert r.headers["content-type"].startswith("text/plain") and "tracer_" in r.text


def test_spec_and_docs_are_public(st):
    for base in (st.public, st.tracer.url):
        assert httpx.get(base + "/openapi.json", timeout=30).status_code == 200
        r = httpx.get(base + "/docs", timeout=30)
        assert r.status_code == 200 and "swagger-ui-bundle.js" in r.text and "cdn" not in r.text.lower()
        assert httpx.get(base + "/docs/assets/swagger-ui-bundle.js", timeout=30).status_code == 200


def test_specs_say_what_the_code_enforces(st):
    ds = httpx.get(st.base + "/openapi.json", timeout=30).json()
    tr = httpx.get(st.tracer.url + "/openapi.json", timeout=30).json()
    P, T = "/services/dataset-service", "/services/tracer"
    for spec in (ds, tr):
        assert spec["components"]["securitySchemes"]["hubToken"]["name"] == "Authorization"
    params = {p["name"]: p["schema"] for p in ds["paths"][f"{P}/api/datasets"]["get"]["parameters"]}
    assert params["limit"]["maximum"] == 500 and params["offset"]["maximum"] == 2**53 - 1
    ops = ds["paths"][f"{P}/api/access-requests"]["get"]
    state = next(p for p in ops["parameters"] if p["name"] == "state")["schema"]
    ref = state["anyOf"][0]["$ref"].rsplit("/", 1)[-1]
    assert "submitted" in ds["components"]["schemas"][ref]["enum"]  # an enum, not a free string
    assert ds["paths"][f"{P}/api/public/datasets"]["get"]["security"] == []
    revoke = ds["paths"][f"{P}/api/grants/{{grant_id}}/revoke"]["post"]
    assert {"401", "403", "404", "409", "413", "422", "503"} <= set(revoke["responses"])
    assert revoke["security"]
    schemas = ds["components"]["schemas"]
    assert schemas["ReasonIn"]["properties"]["reason"]["minLength"] == 3
    assert schemas["ExportIn"]["properties"]["justification"]["minLength"] == 10
    assert len(schemas["DatasetCreate"]["oneOf"]) == 3
    draft = ds["paths"][f"{P}/api/exports/drafts/{{draft_id}}"]["post"]["parameters"][0]["schema"]
    assert draft["pattern"] == "^[0-9a-f]{8,64}$"
    assert "text/plain" in tr["paths"][f"{T}/metrics"]["get"]["responses"]["200"]["content"]
    assert "application/x-ndjson" in tr["paths"][f"{T}/traces"]["get"]["responses"]["200"]["content"]
    assert "application/json" in tr["paths"][f"{T}/traces"]["post"]["requestBody"]["content"]
