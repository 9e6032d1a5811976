"""The REST API through a real JupyterHub (tokens resolved by the hub, never stubbed)."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from dataset_service.app import create_app
from dataset_service.models import Dataset, DatasetState
from fixtures.jupyterhub import free_port

P = "/services/dataset-service"
CALLERS = ["anonymous", "badtoken", "alice", "dac1", "audrey", "dora", "admin", "nobody", "insitu-hub"]
MANAGERS = {"dora", "admin"}
SEE_ALL = {"audrey", "dora", "admin"}
READERS = {"alice", "dac1", "audrey", "dora", "admin"}


@pytest.fixture(scope="module")
def api(hub_server, tmp_path_factory, lake_template):
    import shutil

    from dataset_service.settings import Settings

    root = tmp_path_factory.mktemp("ds-api")
    shutil.copytree(lake_template, root / "lake")
    settings = Settings(lake_dir=root / "lake", datasets_dir=root / "datasets",
                        database_url=f"sqlite:///{root / 'db.sqlite'}", hub_api_url=hub_server.api_url,
                        gid_min=970000, gid_max=970999, tracer_url="", max_studies_per_request=50,
                        identity_cache_ttl=0)
    app = create_app(settings)
    with TestClient(app) as client:
        client.settings = settings
        client.app_ = app
        yield client


def headers(hub_server, who: str) -> dict:
    if who == "anonymous":
        return {}
    if who == "badtoken":
        return {"Authorization": "token not-a-real-token"}
    return {"Authorization": f"token {hub_server.token_for(who)}"}


def wait_built(api, hub_server, dataset_id: str, timeout=60) -> dict:
    h = headers(hub_server, "dora")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.get(f"{P}/api/datasets/{dataset_id}/build", headers=h)
        assert r.status_code == 200
        if r.json()["state"] != "building":
            return r.json()
        time.sleep(0.1)
    raise AssertionError("build did not finish")


@pytest.fixture(scope="module")
def indexed(api, hub_server):
    r = api.post(f"{P}/api/index-runs", headers=headers(hub_server, "dora"))
    assert r.status_code == 202, r.text
    run = r.json()["id"]
    for _ in range(600):
        r = api.get(f"{P}/api/index-runs/{run}", headers=headers(hub_server, "dora"))
        if r.json()["finished_at"]:
            break
        time.sleep(0.1)
    assert r.json()["stats"]["studies"] > 0
    return run


@pytest.fixture(scope="module")
def released(api, hub_server, indexed):
    h = headers(hub_server, "dora")
    r = api.post(f"{P}/api/datasets", json={"name": "released one", "all_studies": True, "tags": ["demo"]}, headers=h)
    assert r.status_code == 202, r.text
    i = r.json()["id"]
    assert wait_built(api, hub_server, i)["state"] == "draft"
    r = api.post(f"{P}/api/datasets/{i}/state", json={"state": "released"}, headers=h)
    assert r.status_code == 200, r.text
    return i


def endpoints(released: str, run: int, study: str):
    d = f"{P}/api/datasets/{released}"
    return [
        ("GET", f"{P}/api/catalogue/filters", None, MANAGERS),
        ("GET", f"{P}/api/catalogue/studies?limit=2", None, MANAGERS),
        ("GET", f"{P}/api/catalogue/studies/{study}", None, MANAGERS),
        ("POST", f"{P}/api/index-runs/", None, MANAGERS) if False else ("GET", f"{P}/api/index-runs/{run}", None, MANAGERS),
        ("GET", f"{P}/api/datasets", None, READERS),
        # a refused body (no studies) so that allowed callers get 422 and nothing is created
        ("POST", f"{P}/api/datasets", {"name": "x", "study_ids": []}, MANAGERS),
        ("GET", d, None, READERS),
        ("PATCH", d, {"contact": "dm@example.org"}, MANAGERS),
        ("POST", f"{d}/state", {"state": "draft"}, MANAGERS),  # not a legal transition: 409 when allowed
        ("GET", f"{d}/manifest", None, READERS),
        ("GET", f"{d}/build", None, SEE_ALL),
        ("GET", f"{d}/events", None, SEE_ALL),
        ("POST", f"{d}/check", None, SEE_ALL),
        ("GET", f"{P}/api/public/datasets", None, set(CALLERS)),
    ]


def test_permission_matrix(api, hub_server, released, indexed):
    study = api.get(f"{P}/api/catalogue/studies?limit=1", headers=headers(hub_server, "dora")).json()["items"][0]["id"]
    failures = []
    for method, path, body, allowed in endpoints(released, indexed, study):
        for who in CALLERS:
            r = api.request(method, path, json=body, headers=headers(hub_server, who))
            if who in allowed:
                ok = r.status_code not in (401, 403)
            elif who in ("anonymous", "badtoken"):
                ok = r.status_code == 401
            else:
                ok = r.status_code == 403
            if not ok:
                failures.append(f"{method} {path} as {who}: {r.status_code} {r.text[:100]}")
    assert not failures, "\n".join(failures)
    # the index trigger itself (kept last: it starts a run)
    for who in CALLERS:
        r = api.post(f"{P}/api/index-runs", headers=headers(hub_server, who))
        expected = 202 if who in MANAGERS else (401 if who in ("anonymous", "badtoken") else 403)
        assert r.status_code == expected, (who, r.text)


def count(api) -> int:
    with api.app_.state.db.session() as s:
        return s.scalar(select(func.count()).select_from(Dataset))


@pytest.mark.parametrize("body, status, reason", [
    ({"name": "x", "study_ids": ["../../etc"]}, 422, "traversal"),
    ({"name": "x", "study_ids": ["/etc/passwd"]}, 422, "absolute"),
    ({"name": "x", "study_ids": ["sub-00001/nope"]}, 404, "unknown study"),
    ({"name": "x", "study_ids": [f"sub-{i:05d}/study-01" for i in range(60)]}, 413, "too many"),
    ({"name": "x", "query": {"colour": "red"}}, 422, "colour"),
    ({"name": "x", "all_studies": True, "study_ids": ["sub-00001/study-01"]}, 422, "exactly one"),
    ({"name": "x", "all_studies": True, "previous_id": "ds-nope"}, 404, "previous"),
    ({"name": "", "all_studies": True}, 422, ""),
    ({"name": "x", "all_studies": True, "state": "published"}, 422, ""),
    ({"name": "x", "all_studies": True, "tags": ["a/b\n"]}, 422, ""),
])
def test_bad_create_changes_nothing(api, hub_server, indexed, body, status, reason):
    before = count(api)
    r = api.post(f"{P}/api/datasets", json=body, headers=headers(hub_server, "dora"))
    assert r.status_code == status, r.text
    assert reason in str(r.json()["detail"])
    assert count(api) == before


def test_malformed_json_and_unknown_ids(api, hub_server, released):
    h = headers(hub_server, "dora") | {"Content-Type": "application/json"}
    before = count(api)
    assert api.post(f"{P}/api/datasets", content=b"{not json", headers=h).status_code == 422
    assert api.patch(f"{P}/api/datasets/{released}", content=b"[", headers=h).status_code == 422
    assert count(api) == before
    assert api.get(f"{P}/api/datasets/ds-nope", headers=h).status_code == 404
    assert api.post(f"{P}/api/datasets/ds-nope/state", json={"state": "released"}, headers=h).status_code == 404
    assert api.post(f"{P}/api/datasets/{released}/state", json={"state": "flying"}, headers=h).status_code == 422
    assert api.get(f"{P}/api/catalogue/studies/..%2F..%2Fetc/passwd", headers=h).status_code in (404, 422)
    assert api.get(f"{P}/api/catalogue/studies?limit=100000", headers=h).status_code == 422
    assert api.get(f"{P}/api/catalogue/studies?date_from=yesterday", headers=h).status_code == 422


def test_lifecycle_visibility_and_edits(api, hub_server, indexed):
    dora, alice = headers(hub_server, "dora"), headers(hub_server, "alice")
    r = api.post(f"{P}/api/datasets", json={"name": "ct only", "query": {"modality": "CT"}, "license": "CC-BY-4.0"},
                 headers=dora)
    assert r.status_code == 202 and r.headers["location"].endswith(r.json()["id"])
    i = r.json()["id"]
    st = wait_built(api, hub_server, i)
    assert st["state"] == "draft" and st["done"] == st["total"] > 0
    # a draft is invisible to researchers
    assert api.get(f"{P}/api/datasets/{i}", headers=alice).status_code == 404
    assert i not in [d["id"] for d in api.get(f"{P}/api/datasets?limit=500", headers=alice).json()["items"]]
    man = api.get(f"{P}/api/datasets/{i}/manifest", headers=dora).json()
    assert man["merkle_root"] == api.get(f"{P}/api/datasets/{i}", headers=dora).json()["merkle_root"]
    # exactly the catalogue's studies with a CT series, each of them holding one
    studies = {f"{s['subject']}/{s['study']}" for s in man["studies"]}
    assert studies and all(any(se["modality"] == "CT" for se in s["series"]) for s in man["studies"])
    ct = api.get(f"{P}/api/catalogue/studies", params={"modality": "CT", "limit": 500}, headers=dora).json()
    assert ct["total"] == len(ct["items"]) and studies == {x["id"] for x in ct["items"]}
    # skipping a state is refused
    assert api.post(f"{P}/api/datasets/{i}/state", json={"state": "published"}, headers=dora).status_code == 409
    assert api.post(f"{P}/api/datasets/{i}/state", json={"state": "released"}, headers=dora).status_code == 200
    assert api.get(f"{P}/api/datasets/{i}", headers=alice).status_code == 200
    # content fields never change; metadata fields may
    for field, value in [("name", "renamed"), ("study_ids", []), ("version", 9), ("merkle_root", "00")]:
        r = api.patch(f"{P}/api/datasets/{i}", json={field: value}, headers=dora)
        assert r.status_code == 422, (field, r.text)
    r = api.patch(f"{P}/api/datasets/{i}", json={"description": "better words", "tags": ["ct"]}, headers=dora)
    assert r.status_code == 200 and r.json()["description"] == "better words" and r.json()["name"] == "ct only"
    assert api.get(f"{P}/api/public/datasets/{i}").status_code == 404  # not yet published
    assert api.post(f"{P}/api/datasets/{i}/state", json={"state": "published"}, headers=dora).status_code == 200
    pub = api.get(f"{P}/api/public/datasets/{i}")
    assert pub.status_code == 200 and "gid" not in pub.json() and pub.json()["merkle_root"]
    r = api.post(f"{P}/api/datasets/{i}/state", json={"state": "invalidated", "reason": "bad labels"}, headers=dora)
    assert r.status_code == 200 and r.json()["state"] == "invalidated"
    assert api.patch(f"{P}/api/datasets/{i}", json={"description": "x"}, headers=dora).status_code == 409
    assert api.post(f"{P}/api/datasets/{i}/state", json={"state": "released"}, headers=dora).status_code == 409
    ev = api.get(f"{P}/api/datasets/{i}/events", headers=dora).json()
    assert [e["action"] for e in ev] == ["create", "build", "transition", "update", "transition", "transition"]
    chk = api.post(f"{P}/api/datasets/{i}/check", headers=dora).json()
    assert chk["ok"] and chk["files_checked"] == man["file_count"]


def test_paging(api, hub_server, released, indexed):
    h = headers(hub_server, "dora")
    total = api.get(f"{P}/api/catalogue/studies?limit=1", headers=h).json()["total"]
    seen = []
    for off in range(0, total, 3):
        page = api.get(f"{P}/api/catalogue/studies?limit=3&offset={off}", headers=h).json()
        assert page["total"] == total and len(page["items"]) <= 3
        seen += [x["id"] for x in page["items"]]
    assert len(seen) == total == len(set(seen)) and seen == sorted(seen)
    ct = api.get(f"{P}/api/catalogue/studies?modality=ct&limit=500", headers=h).json()
    assert ct["items"] and all("CT" in x["modalities"].split(",") for x in ct["items"])


def test_unreachable_tracer_fails_closed(api, hub_server, released):
    dora = headers(hub_server, "dora")
    settings = api.settings.model_copy(update={"tracer_url": f"http://127.0.0.1:{free_port()}/services/tracer"})
    app = create_app(settings, recover_builds=False)
    with TestClient(app) as c:
        r = c.post(f"{P}/api/datasets/{released}/state", json={"state": "published"}, headers=dora)
        assert r.status_code == 503, r.text
        r = c.patch(f"{P}/api/datasets/{released}", json={"contact": "other@example.org"}, headers=dora)
        assert r.status_code == 503
    d = api.get(f"{P}/api/datasets/{released}", headers=dora).json()
    assert d["state"] == "released" and d["contact"] != "other@example.org"


def test_openapi_documents_every_route(api):
    paths = api.get(f"{P}/openapi.json").json()["paths"]
    for p in ["/api/datasets", "/api/datasets/{dataset_id}/state", "/api/datasets/{dataset_id}/manifest",
              "/api/datasets/{dataset_id}/build", "/api/datasets/{dataset_id}/check", "/api/catalogue/studies"]:
        assert P + p in paths


def test_invalidation_needs_a_reason_at_the_api(api, hub_server, released):
    """The rule lives in the API (and the operation), not only in the web form."""
    dora = headers(hub_server, "dora")
    for reason in ("", "   ", "no"):
        r = api.post(f"{P}/api/datasets/{released}/state", json={"state": "invalidated", "reason": reason},
                     headers=dora)
        assert r.status_code == 422 and "reason" in r.text, r.text
    assert api.get(f"{P}/api/datasets/{released}", headers=dora).json()["state"] == "released"
