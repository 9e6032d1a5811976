"""The data manager's pages as a data manager uses them: index the lake (button, run history, skipped
files), build a dataset from catalogue filters after counting its studies and subjects, a new version,
edit metadata, follow the build, invalidate after seeing what it ends (reason traced as a digest).

The lake is a real demo lake, indexed and built for real (ACLs, symlinks, manifest) by a dataset service
whose callers are resolved by a real JupyterHub; invalidation runs on the governance stack, whose real
tracer stores the trace.
"""
from __future__ import annotations

import hashlib
import re
import time
from contextlib import closing

import httpx
import pytest
from fastapi.testclient import TestClient

P = "/services/dataset-service"
COOKIE = "insitu-dataset-service-session"


@pytest.fixture(scope="module")
def svc(hub_server, tmp_path_factory):
    """The dataset service over a fresh demo lake (not yet indexed)."""
    from dataset_service.app import create_app
    from dataset_service.demo_lake import write_lake
    from dataset_service.settings import Settings

    root = tmp_path_factory.mktemp("ds-manage")
    write_lake(root / "lake", 4, seed=11, series_per_study=1, slices=3, size=16)
    (root / "lake" / "sub-9999" / "study-x" / "series-y").mkdir(parents=True)
    (root / "lake" / "sub-9999" / "study-x" / "series-y" / "broken.dcm").write_bytes(b"not a dicom file")
    settings = Settings(lake_dir=root / "lake", datasets_dir=root / "datasets",
                        database_url=f"sqlite:///{root / 'db.sqlite'}", hub_api_url=hub_server.api_url,
                        hub_api_token=hub_server.token_for("dataset-service"), gid_min=975000, gid_max=975999,
                        tracer_url="", identity_cache_ttl=0, service_prefix=P)
    app = create_app(settings)
    with TestClient(app, base_url="http://testserver") as client:
        client.app_ = app
        yield client


def as_user(svc, hub_server, user: str) -> TestClient:
    svc.cookies.clear()
    svc.cookies.set(COOKIE, svc.app_.state.hub_auth.session_value(hub_server.token_for(user)))
    return svc


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def wait(fn, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_index_build_from_a_query_new_version_and_edit(svc, hub_server):
    c = as_user(svc, hub_server, "dora")
    page = c.get(f"{P}/manage/index")
    assert page.status_code == 200 and "The lake has not been indexed yet" in page.text
    r = c.post(f"{P}/manage/index", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and "notice=indexing" in r.headers["location"]
    wait(lambda: not c.get(f"{P}/manage/progress").json()["indexing"])
    page = c.get(f"{P}/manage/index").text
    runs = page[page.index('id="runs"'):]
    assert "dora" in runs and "running" not in runs.split("</table>")[0]
    skips = page[page.index('id="skips"'):]
    assert "sub-9999/study-x/series-y/broken.dcm" in skips  # the skipped-file report, with its reason

    # the live count before creating: a filter that selects part of the lake, then a bad filter
    from dataset_service.models import Study
    from sqlalchemy import select

    with svc.app_.state.db.session() as s:
        studies = list(s.scalars(select(Study)))
    subject = studies[0].subject_id
    mine = [x for x in studies if x.subject_id == subject]
    got = c.get(f"{P}/manage/count", params={"subject": subject}).json()
    assert got == {"studies": len(mine), "subjects": 1, "left_out": 0, "too_many": False,
                   "max": svc.app_.state.settings.max_studies_per_request}
    bad = c.get(f"{P}/manage/count", params={"date_from": "yesterday"})
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.json()["error"]
    form = c.get(f"{P}/manage/new", params={"subject": subject})
    assert form.status_code == 200 and f'<b id="n-studies">{len(mine)}</b>' in form.text
    assert '<b id="n-subjects">1</b>' in form.text

    # bad input: the form again with the reason and what was typed, nothing made
    tok = csrf_of(form.text)
    from dataset_service.models import Dataset

    def n_datasets():
        with svc.app_.state.db.session() as s:
            return len(list(s.scalars(select(Dataset.id))))

    r = c.post(f"{P}/manage/new", data={"csrf_token": tok, "name": "Subject cohort"})
    assert r.status_code == 422 and "Choose at least one filter" in r.text and n_datasets() == 0
    r = c.post(f"{P}/manage/new", data={"csrf_token": tok, "name": "", "subject": subject})
    assert r.status_code == 422 and 'id="form-error"' in r.text and n_datasets() == 0
    r = c.post(f"{P}/manage/new", data={"csrf_token": tok, "name": "Nobody", "subject": "sub-none"})
    assert r.status_code == 409 and "holds no study" in r.text and n_datasets() == 0
    r = c.post(f"{P}/manage/new", data={"csrf_token": tok, "name": "Subject cohort", "subject": subject,
                                        "tags": "demo, <b>", "license": "CC-BY-4.0"})
    assert r.status_code == 422 and "tags" in r.text and n_datasets() == 0

    r = c.post(f"{P}/manage/new", data={"csrf_token": tok, "name": "Subject cohort", "subject": subject,
                                        "description": "One subject's studies", "tags": "demo, ct",
                                        "license": "CC-BY-4.0", "contact": "data@insitu.example"},
               follow_redirects=False)
    assert r.status_code == 303, r.text
    first = re.search(r"dataset=([\w-]+)", r.headers["location"]).group(1)
    wait(lambda: not c.get(f"{P}/manage/progress").json()["building"])
    with svc.app_.state.db.session() as s:
        d = s.get(Dataset, first)
        assert d.state.value == "draft" and d.n_studies == len(mine) and d.tags == ["demo", "ct"]
        assert {x.study_id for x in d.studies} == {x.id for x in mine}

    # a new version: the form starts from v1's metadata; v2 names v1; v1 is unchanged
    manage = c.get(f"{P}/manage").text
    assert f'href="{P}/manage/new?previous={first}"' in manage and 'id="states-explained"' in manage
    form = c.get(f"{P}/manage/new", params={"previous": first})
    assert "A new version of Subject cohort" in form.text and 'value="demo, ct"' in form.text
    r = c.post(f"{P}/manage/new", data={"csrf_token": tok, "name": "Subject cohort", "previous_id": first,
                                        "all_studies": "yes", "tags": "demo, ct, all"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    second = re.search(r"dataset=([\w-]+)", r.headers["location"]).group(1)
    wait(lambda: not c.get(f"{P}/manage/progress").json()["building"])
    with svc.app_.state.db.session() as s:
        v2, v1 = s.get(Dataset, second), s.get(Dataset, first)
        assert v2.previous_id == first and v2.version == 2 and v2.state.value == "draft"
        assert v2.n_studies == len(studies) and v1.n_studies == len(mine)
    assert c.get(f"{P}/manage/new", params={"previous": "ds-none"}).status_code == 404

    # editing metadata: bad tag refused on the form, nothing changed; a good edit recorded in the history
    edit = c.get(f"{P}/manage/datasets/{first}/edit")
    assert edit.status_code == 200 and "One subject&#39;s studies" in edit.text
    r = c.post(f"{P}/manage/datasets/{first}/edit", data={"csrf_token": tok, "description": "x",
                                                         "tags": "bad tag!"})
    assert r.status_code == 422 and 'id="form-error"' in r.text
    with svc.app_.state.db.session() as s:
        assert s.get(Dataset, first).description == "One subject's studies"
    r = c.post(f"{P}/manage/datasets/{first}/edit", data={
        "csrf_token": tok, "description": "The studies of one subject, all CT.", "license": "CC-BY-4.0",
        "tags": "demo, ct", "contact": "data@insitu.example"}, follow_redirects=False)
    assert r.status_code == 303 and "notice=edited" in r.headers["location"]
    page = c.get(f"{P}/datasets/{first}").text
    assert "The studies of one subject, all CT." in page and "metadata: description" in page
    assert c.post(f"{P}/manage/datasets/ds-none/edit", data={"csrf_token": tok}).status_code == 404


def test_manage_pages_are_for_data_managers_only(svc, hub_server):
    c = as_user(svc, hub_server, "alice")
    for path in ("/manage/index", "/manage/new", "/manage/datasets/x/edit", "/manage/datasets/x/invalidate"):
        r = c.get(P + path)
        assert r.status_code == 403 and "Not for your role" in r.text, path
    assert c.get(f"{P}/manage/count").status_code == 403
    assert c.get(f"{P}/manage/progress").status_code == 403
    from dataset_service.web.csrf import csrf_key, make_token

    key = csrf_key(svc.app_.state.governance_settings.csrf_secret, svc.app_.state.settings.hub_api_token)
    tok = make_token(key, hub_server.token_for("alice"))  # alice's own valid form token: her role is refused
    assert c.post(f"{P}/manage/index", data={"csrf_token": tok}).status_code == 403
    assert c.post(f"{P}/manage/new", data={"csrf_token": tok, "name": "x", "subject": "sub-0000"}).status_code == 403
    d = as_user(svc, hub_server, "dora")
    assert d.post(f"{P}/manage/index", data={"csrf_token": "0" * 64}).status_code == 403  # a forged form


def test_a_state_change_the_tracer_does_not_take_is_a_503_page_and_changes_nothing(svc, hub_server):
    """The same catalogue served with a tracer that cannot be reached: releasing or publishing a dataset
    (built by the first test) answers the plain page, 503, and the dataset keeps its state."""
    from dataset_service.app import create_app
    from dataset_service.models import Dataset, DatasetState
    from fixtures.jupyterhub import free_port
    from sqlalchemy import select

    settings = svc.app_.state.settings.model_copy(update={
        "tracer_url": f"http://127.0.0.1:{free_port()}/services/tracer", "tracer_token": "t"})
    app = create_app(settings, recover_builds=False)
    with app.state.db.session() as s:
        ds = s.scalars(select(Dataset).where(Dataset.state.in_([DatasetState.draft, DatasetState.released]))).first()
        assert ds is not None, "the first test builds datasets"
        ds_id, before = ds.id, ds.state
    target = "released" if before == DatasetState.draft else "published"
    with TestClient(app, base_url="http://testserver") as c:
        c.cookies.set(COOKIE, app.state.hub_auth.session_value(hub_server.token_for("dora")))
        token = csrf_of(c.get(f"{P}/manage").text)
        r = c.post(f"{P}/manage/datasets/{ds_id}/state", data={"csrf_token": token, "state": target},
                   follow_redirects=False)
    assert r.status_code == 503 and "could not be recorded in the audit trail" in r.text, r.text[:300]
    assert r.headers["content-type"].startswith("text/html")
    with app.state.db.session() as s:
        assert s.get(Dataset, ds_id).state == before


@pytest.fixture
def st(governance_stack):
    return governance_stack


def test_invalidate_says_what_it_ends_then_confirms_and_traces_the_reason_digest(st):
    from fixtures.jupyterhub import DEMO_PASSWORD  # noqa: F401  (the stack's demo users)

    ds = st.add_dataset("Manage invalidate", studies=[("mi-001", "s1", "CT", "CHEST", "lung")])
    with st.api("alice") as c:
        rid = c.post("/api/access-requests", json={"dataset_id": ds, "project": "lung", "duration_days": 10,
                                                   "purpose": "Invalidation page test."}).json()["id"]
    for reviewer in ("dac1", "dac2"):
        with st.api(reviewer) as c:
            assert c.post(f"/api/access-requests/{rid}/votes", json={"decision": "approve"}).status_code == 200
    with st.api("insitu-hub") as c:
        r = c.post("/api/sessions", json={"user": "carol", "project": "lung", "dataset_ids": [ds],
                                          "profile": "cpu"})
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
    cookies = {COOKIE: st.app.state.hub_auth.session_value(st.token("dora"))}
    with closing(httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False)) as c:
        tok = csrf_of(c.get("/manage").text)
        # the Invalidate button of the list: no change yet, the confirmation page says what it ends
        r = c.post(f"/manage/datasets/{ds}/state", data={"csrf_token": tok, "state": "invalidated",
                                                          "reason": "wrong studies"})
        assert r.status_code == 303 and f"/manage/datasets/{ds}/invalidate?reason=wrong+studies" in r.headers["location"]
        r = c.get(r.headers["location"].split("/services/dataset-service", 1)[1])
        assert r.status_code == 200 and 'id="effects"' in r.text
        effects = r.text[r.text.index('id="effects"'):]
        assert "project <b>lung</b>" in effects and "carol · project lung" in effects and sid[:8] in effects
        assert "wrong studies" in r.text and f'action="/services/dataset-service/manage/datasets/{ds}/invalidate"' in r.text
        assert st.sql("select state from datasets where id = :i", i=ds)[0][0] == "released"
        # confirmed without a reason: the page again with the reason asked for, nothing changed
        r = c.post(f"/manage/datasets/{ds}/invalidate", data={"csrf_token": tok, "reason": " "})
        assert r.status_code == 422 and "a reason of at least 3 characters" in r.text and 'id="effects"' in r.text
        assert st.sql("select state from datasets where id = :i", i=ds)[0][0] == "released"
        reason = "Two studies belong to another cohort."
        r = c.post(f"/manage/datasets/{ds}/invalidate", data={"csrf_token": tok, "reason": reason})
        assert r.status_code == 303
        assert st.sql("select state from datasets where id = :i", i=ds)[0][0] == "invalidated"
        r = c.post(f"/manage/datasets/{ds}/invalidate", data={"csrf_token": tok, "reason": reason})
        assert r.status_code == 409 and "cannot go from invalidated" in r.text  # final: said on the page
        page = c.get(f"/manage/datasets/{ds}/invalidate")
        assert page.status_code == 200 and 'id="no-grants"' in page.text  # the grant no longer in force
    traces = wait(lambda: [t["trace"] for t in st.tracer.traces(st.token("audrey"), action="INVALIDATE_DATASET",
                                                                dataset=ds)])
    details = traces[0]["details"]
    assert details["reason_sha256"] == hashlib.sha256(reason.encode()).hexdigest()
    assert reason not in str(traces[0])


# --- in a real browser: the pages update by themselves --------------------------------------------------
@pytest.fixture(scope="module")
def served(hub_server, tmp_path_factory):
    """The dataset service over its own indexed demo lake, on a loopback port, for Chromium."""
    import os
    import threading

    import uvicorn

    from dataset_service.app import create_app
    from dataset_service.demo_lake import write_lake
    from dataset_service.indexer import index_lake
    from dataset_service.settings import Settings
    from fixtures.jupyterhub import free_port

    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian chromium is not installed")
    root = tmp_path_factory.mktemp("ds-manage-browser")
    write_lake(root / "lake", 5, seed=12, series_per_study=1, slices=3, size=16)
    settings = Settings(lake_dir=root / "lake", datasets_dir=root / "datasets",
                        database_url=f"sqlite:///{root / 'db.sqlite'}", hub_api_url=hub_server.api_url,
                        hub_api_token=hub_server.token_for("dataset-service"), gid_min=976000, gid_max=976999,
                        tracer_url="", identity_cache_ttl=0, service_prefix=P)
    app = create_app(settings)
    index_lake(settings, app.state.db, progress=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the dataset service did not start"
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}{P}"
    server.should_exit = True
    thread.join(15)


@pytest.mark.browser
def test_build_progress_and_the_query_count_update_by_themselves_in_a_browser(served, hub_server):
    import threading

    from playwright.sync_api import sync_playwright

    from dataset_service.builder import create_dataset
    from dataset_service.models import Study
    from sqlalchemy import select

    app, base = served
    with app.state.db.session() as s:
        studies = list(s.scalars(select(Study)))
    subject = studies[0].subject_id
    n_mine = len([x for x in studies if x.subject_id == subject])
    gate = threading.Event()
    app.state.builds.pool.submit(gate.wait, 120)  # the one build worker is busy: the next build waits
    try:
        ds = create_dataset(app.state.settings, app.state.db, actor="dora", name="Live build", all_studies=True)
        app.state.builds.submit(ds)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                ctx = browser.new_context()
                ctx.add_cookies([{"name": COOKIE, "url": base + "/",
                                  "value": app.state.hub_auth.session_value(hub_server.token_for("dora"))}])
                page = ctx.new_page()
                page.goto(base + "/manage")
                row = page.locator(f"tr[data-dataset='{ds}']")
                assert row.locator(".badge-building").count() == 1 and page.locator("#live").count() == 1
                gate.set()  # the build runs now; nobody reloads the page
                page.wait_for_selector(f"tr[data-dataset='{ds}'] .badge-draft", timeout=60000)
                assert page.locator("#live").count() == 0

                # the count of a catalogue query, live while typing
                page.goto(base + "/manage/new")
                page.fill("#f-subject", subject)
                page.wait_for_function(
                    "n => document.getElementById('n-studies') && document.getElementById('n-studies')"
                    ".textContent === String(n)", arg=n_mine, timeout=30000)
                assert page.locator("#n-subjects").inner_text() == "1"
                assert page.locator("input[data-mirror='subject']").input_value() == subject
                box = page.locator("input[name='all_studies']").bounding_box()
                assert box and box["width"] < 40  # a checkbox keeps its size (the airlock's file picker too)
                page.fill("#f-date_from", "not-a-date")
                page.wait_for_selector("#count-error", timeout=30000)
                assert "YYYY-MM-DD" in page.locator("#count-error").inner_text()
            finally:
                browser.close()
    finally:
        gate.set()
