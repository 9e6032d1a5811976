"""Which datasets does this workspace have? Asked in JupyterLab, in a real browser.

alice's project holds two datasets built by the real builder over one demo lake, "Lung CT demo"
(every study) and "Lung CT follow-up" (one study), each through its own grant with its own end.
In Chromium she logs in at the real hub behind the real proxy, starts a workspace with both
(the sandbox spawner; the sessions API is the stand-in of ``tests/hub/sandbox_support.py``,
which answers as docs/CONTRACTS.md §3 says: grant id, name, version and the grant's end per
dataset). In JupyterLab the status bar names both datasets; a click opens the Datasets panel,
which shows for each its name and version (from the dataset's manifest), id, subjects and
studies, the read-only folder it is mounted at and the project and grant it comes through with
the grant's end. The oracle is the lake and the builder's catalogue on the host; the folders
the panel names are then opened from a kernel inside the workspace (the dataset's manifest is
there, and nothing can be written there).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sqlite3

import pytest

from journey_support import StandInDatasetService, Workspace, demo_layout, sandbox_hub_config, start_hub, wait_stopped
from nb_demo import build_dataset
from sandbox_support import LAKE_MOUNT
from test_journey_lab import off_loop, page, pytestmark  # noqa: F401  (the browser page fixture, the skip marks)
from tests.fixtures.jupyterhub import DEMO_PASSWORD

TODAY = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
ENDS = {"full": TODAY + dt.timedelta(days=120), "follow-up": TODAY + dt.timedelta(days=10, hours=12)}


def readable(t: dt.datetime) -> str:
    return f"{t.day} {t.strftime('%B %Y')}, {t.strftime('%H:%M')} UTC"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey-datasets")
    layout, full = demo_layout(root, subjects=3)
    db = sqlite3.connect(root / "catalogue.sqlite")
    (first,) = db.execute("select min(id) from studies").fetchone()
    follow = build_dataset(layout.lake, layout.datasets, root / "catalogue.sqlite", name="Lung CT follow-up",
                           study_ids=[first], lake_mount_path=LAKE_MOUNT).name
    (gid,) = db.execute("select gid from datasets where id = ?", (follow,)).fetchone()
    n_studies = db.execute("select count(*) from studies").fetchone()[0]
    db.close()
    layout.gids[follow], layout.studies[follow] = gid, []
    service = StandInDatasetService(layout, grants={("alice", "lung"): [full, follow]},
                                    expires={full: ENDS["full"].isoformat(), follow: ENDS["follow-up"].isoformat()})
    service.start()
    homes = root / "homes"
    homes.mkdir()
    runtime_root = f"/tmp/insitu-jd-{os.getpid()}"
    hub = start_hub(root / "hub", users={"alice": ["researchers", "project-lung"]},
                    extra_config=sandbox_hub_config(service, homes, runtime_root))
    yield {"hub": hub, "service": service, "full": full, "follow": follow, "layout": layout,
           "n_studies": n_studies, "first": first}
    hub.api("DELETE", "/users/alice/server")
    try:
        wait_stopped(hub, "alice")
    finally:
        hub.stop()
        service.stop()
        shutil.rmtree(runtime_root, ignore_errors=True)


def test_jupyterlab_says_which_datasets_the_workspace_has(stack, page):
    hub, full, follow = stack["hub"], stack["full"], stack["follow"]
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

    # the oracle, on the host: the manifests the builder sealed, the lake's studies and subjects
    manifests = {ds: json.loads((stack["layout"].datasets / ds / "manifest.json").read_text()) for ds in (full, follow)}
    assert manifests[full]["name"] == "Lung CT demo" and manifests[follow]["name"] == "Lung CT follow-up"
    subjects = len([p for p in stack["layout"].lake.iterdir() if p.is_dir()])
    expected = {
        full: ("Lung CT demo", f"{subjects} subjects, {stack['n_studies']} studies", ENDS["full"]),
        follow: ("Lung CT follow-up", "1 subject, 1 study,", ENDS["follow-up"]),
    }

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
    for ds, (name, counts, ends) in expected.items():
        sec = panel.locator(f'section.insitu-dataset[data-dataset-id="{ds}"]')
        assert sec.locator(".insitu-ds-name").inner_text() == name
        assert sec.locator(".insitu-ds-version").inner_text().strip() == "v1"
        assert sec.locator(".insitu-ds-id").inner_text() == ds
        assert counts in sec.locator(".insitu-ds-counts").inner_text(), sec.locator(".insitu-ds-counts").inner_text()
        grant = sec.locator(".insitu-ds-grant").inner_text()
        assert f"project lung, grant lung-{ds}, until {readable(ends)}" in grant, grant
        assert f"({(ends - dt.datetime.now(dt.timezone.utc)).days} days left)" in grant, grant
        paths[ds] = sec.locator(".insitu-ds-path").inner_text()
        assert paths[ds] == f"/mnt/datasets/{ds}", paths[ds]
        assert not sec.locator(".insitu-ds-problem").count()

    # the folders the panel names are the datasets, read-only, inside the workspace
    ws = Workspace(hub.url + "/user/alice/", stack["hub"].token_for("alice"))
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

    # the side bar keeps it at hand: its tab shows the same panel
    page.locator(".jp-SideBar .lm-TabBar-tab[data-id='insitu-datasets-panel']").first.wait_for(state="attached")
