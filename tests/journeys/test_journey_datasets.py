"""Which datasets does this workspace have? Asked in JupyterLab, in a real browser.

alice's project lung holds two datasets built by the real builder over one demo lake, "Lung CT
demo" (every study) and "Lung CT follow-up" (one study), released by a data manager and granted
by the committee through the real dataset service's API, for 30 and 10 days
(``journey_support.service_stack``: the real dataset service, tracer and airlock behind the real
hub and proxy, the sandbox spawner). In Chromium she logs in and starts a workspace with both.
In JupyterLab the status bar names both datasets; a click opens the Datasets panel, which shows
for each its name and version (from the dataset's manifest), id, subjects and studies, the
read-only folder it is mounted at, by its name (``/mnt/datasets/by-name/<slug>-v<version>``) and
by its id, and the project and grant it comes through with the grant's end (from the session the
dataset service opened, passed in by the spawner). The oracle is the lake, the builder's catalogue
and the service's grants API; the folders the panel names are then opened from a kernel inside
the workspace (the dataset's manifest is there, the folder by name holds the same files as the
folder by id, and nothing can be written there).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3

import pytest

from journey_support import Workspace, service_stack, stop_service_stack
from nb_demo import build_dataset
from sandbox_support import LAKE_MOUNT
from test_journey_lab import off_loop, page, pytestmark  # noqa: F401  (the browser page fixture, the skip marks)
from tests.fixtures.jupyterhub import DEMO_PASSWORD


def readable(t: dt.datetime) -> str:
    t = t.astimezone(dt.timezone.utc)
    return f"{t.day} {t.strftime('%B %Y')}, {t.strftime('%H:%M')} UTC"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey-datasets")
    st = service_stack(root, grants=[("alice", "lung")], subjects=3)
    try:
        # a second dataset of one study, built by the real builder into the service's database
        db = sqlite3.connect(root / "catalogue.sqlite")
        (first,) = db.execute("select min(id) from studies").fetchone()
        db.close()
        st.follow = build_dataset(root / "lake", root / "datasets", root / "catalogue.sqlite", name="Lung CT follow-up",
                                  study_ids=[first], lake_mount_path=LAKE_MOUNT).name
        with st.api("dora") as c:
            assert c.post(f"/api/datasets/{st.follow}/state", json={"state": "released"}).status_code == 200
        st.grant(st.follow, "alice", "lung", days=10)
        st.root = root
    except BaseException:
        stop_service_stack(st, ())
        raise
    yield st
    stop_service_stack(st, ("alice",))


def test_jupyterlab_says_which_datasets_the_workspace_has(stack, page):
    hub, full, follow = stack.hub, stack.ds, stack.follow
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", DEMO_PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(lambda u: "/login" not in u)
    page.goto(hub.url + "/hub/spawn")
    for ds in (full, follow):
        page.locator(f'input[name=dataset][value="{ds}"]').check()
    page.locator("form input[type=submit], form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=180_000)
    page.wait_for_selector(".jp-DirListing-content", timeout=120_000)

    # the oracle, on the host: the manifests the builder sealed, the lake, the service's grants
    datasets, lake = stack.root / "datasets", stack.root / "lake"
    manifests = {ds: json.loads((datasets / ds / "manifest.json").read_text()) for ds in (full, follow)}
    assert manifests[full]["name"] == "Lung CT demo" and manifests[follow]["name"] == "Lung CT follow-up"
    subjects = [p for p in lake.iterdir() if p.is_dir()]
    n_studies = sum(1 for p in subjects for s in p.iterdir() if s.is_dir())
    ends = {}
    with stack.api("dac1") as c:
        for ds in (full, follow):
            (g,) = c.get("/api/grants", params={"dataset_id": ds, "project": "lung"}).json()
            ends[ds] = (str(g["id"]), dt.datetime.fromisoformat(g["valid_until"]))
    assert 9 <= (ends[follow][1] - dt.datetime.now(dt.timezone.utc)).days <= 10
    expected = {
        full: ("Lung CT demo", f"{len(subjects)} subjects, {n_studies} studies"),
        follow: ("Lung CT follow-up", "1 subject, 1 study,"),
    }
    by_name = {full: "/mnt/datasets/by-name/lung-ct-demo-v1", follow: "/mnt/datasets/by-name/lung-ct-follow-up-v1"}

    status = page.locator(".insitu-datasets-status")
    status.wait_for()
    page.wait_for_function("() => /Datasets: /.test(document.querySelector('.insitu-datasets-status').textContent)")
    assert status.inner_text().strip() == "Datasets: Lung CT demo v1, Lung CT follow-up v1", status.inner_text()
    status.click()
    panel = page.locator("#insitu-datasets-panel")
    panel.locator("section.insitu-dataset").first.wait_for()
    assert panel.is_visible()
    sections = panel.locator("section.insitu-dataset")
    # both, each once
    shown = [sections.nth(i).get_attribute("data-dataset-id") for i in range(sections.count())]
    assert sorted(shown) == sorted([full, follow]) and len(shown) == 2, shown
    assert "Project lung" in panel.locator(".insitu-ds-intro").inner_text()
    paths = {}
    for ds, (name, counts) in expected.items():
        sec = panel.locator(f'section.insitu-dataset[data-dataset-id="{ds}"]')
        assert sec.locator(".insitu-ds-name").inner_text() == name
        assert sec.locator(".insitu-ds-version").inner_text().strip() == "v1"
        assert sec.locator(".insitu-ds-id").inner_text() == ds
        assert counts in sec.locator(".insitu-ds-counts").inner_text(), sec.locator(".insitu-ds-counts").inner_text()
        grant_id, until = ends[ds]
        grant = sec.locator(".insitu-ds-grant").inner_text()
        assert f"project lung, grant {grant_id}, until {readable(until)}" in grant, grant
        assert f"({(until - dt.datetime.now(dt.timezone.utc)).days} days left)" in grant, grant
        paths[ds] = sec.locator(".insitu-ds-path").inner_text()
        assert paths[ds] == f"/mnt/datasets/{ds}", paths[ds]
        # the folder by its name, first ("Folder"), the id folder beside it ("Same as")
        assert sec.locator(".insitu-ds-name-path").inner_text() == by_name[ds]
        assert sec.locator("dt").nth(1).inner_text() == "Folder" and sec.locator("dt").nth(2).inner_text() == "Same as"
        assert not sec.locator(".insitu-ds-problem").count()

    # the folders the panel names are the datasets, read-only, inside the workspace
    ws = Workspace(hub.url + "/user/alice/", hub.token_for("alice"))
    out = off_loop(ws.exec, "import json, os\n"
                   f"for p in {sorted(paths.values())!r}:\n"
                   "    m = json.load(open(os.path.join(p, 'manifest.json')))\n"
                   "    try:\n        open(os.path.join(p, 'note.txt'), 'w'); w = 'writable'\n"
                   "    except OSError as e:\n        w = type(e).__name__\n"
                   "    print(p, m['dataset_id'], m['name'], w, sep='|')")
    lines = sorted(line for line in (out or "").splitlines() if line.startswith("/mnt/datasets/"))
    want = sorted(f"/mnt/datasets/{ds}|{ds}|{expected[ds][0]}|" for ds in (full, follow))
    assert [line.rsplit("|", 1)[0] + "|" for line in lines] == want, out
    assert all(line.rsplit("|", 1)[1] in ("OSError", "PermissionError") for line in lines), out
    # by name: the same files as by id (through the study links), and the names cannot be removed
    out = off_loop(ws.exec, "import os, json\n"
                   "def tree(t):\n"
                   "    return sorted(os.path.relpath(os.path.join(d, f), t) for d, _, fs in os.walk(t, followlinks=True) for f in fs)\n"
                   f"for ds, p in {sorted(by_name.items())!r}:\n"
                   "    try:\n        os.unlink(p); rm = 'removed'\n"
                   "    except OSError as e:\n        rm = type(e).__name__\n"
                   "    print('NAMED', json.dumps([ds, os.listdir('/mnt/datasets/by-name'), tree(p) == tree('/mnt/datasets/' + ds),"
                   " len(tree(p)), rm]))")
    named = [json.loads(line[6:]) for line in (out or "").splitlines() if line.startswith("NAMED ")]
    assert sorted(n[0] for n in named) == sorted(by_name), out
    for ds, listing, same, n_files, rm in named:
        assert sorted(listing) == sorted(p.rsplit("/", 1)[1] for p in by_name.values()), out
        assert same and n_files > 2 and rm == "PermissionError", out

    # the same in a terminal (a desktop has no JupyterLab): insitu-datasets, on the workspace's PATH
    text = off_loop(ws.terminal, "insitu-datasets") or ""
    for ds, (name, _) in expected.items():
        assert f"{name} v1\n  id        {ds}\n" in text, text  # (the terminal's carriage returns taken out)
        assert f"  folder    {by_name[ds]}\n  same as   /mnt/datasets/{ds}\n" in text, text
        assert f"until {readable(ends[ds][1])}" in text, text

    # the side bar keeps it at hand: its tab shows the same panel
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='insitu-datasets-panel']").first.wait_for(state="attached")
