"""A researcher's export, as lived: JupyterLab's file browser → the airlock's review → the download.

One stack for the module (``journey_support.service_stack``): the real JupyterHub and
configurable-http-proxy, the sandbox spawner, and the real platform services behind them
(the dataset service with its SQL database and export airlock, the tracer). The demo
dataset is built by the real builder into the service's database, released by the data
manager and granted to project lung by two committee members through the API.

In Chromium alice logs in, starts a workspace (project lung, the dataset), has a table of
aggregate figures and a figure in ``results/``, selects both in the file browser and
chooses "Request export…". JupyterLab's exports panel shows the draft; its "Submit for
review" opens the airlock page, where she submits it; the panel, still open in the other
tab, follows the request to "in review". dora (a data manager: the airlock's reviewer
role) approves it file by file in her own browser; the panel shows "approved" without a
reload. alice opens the request from the panel and downloads each file: the bytes are
those of her workspace files. Refused all along: the download before approval (to alice),
and after it to another researcher of the same project (carol), to a researcher of
another project (bob) and to the reviewer.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest

from journey_support import (CHROMIUM, CHROMIUM_ARGS, Workspace, browser_journey_marks, browser_login, off_loop,
                             service_stack, stop_service_stack)
from tests.fixtures.artifacts import TEST_ARTIFACTS
from tests.fixtures.jupyterhub import DEMO_PASSWORD

pytestmark = browser_journey_marks()

RESULTS = """
import os
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
os.makedirs("results", exist_ok=True)
with open("results/auc-by-site.csv", "w") as f:
    f.write("site,n_subjects,auc\\nA,48,0.81\\nB,52,0.78\\n")
fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
ax.bar(["A", "B"], [0.81, 0.78]); ax.set_ylabel("AUC")
fig.savefig("results/auc-by-site.png"); print("written")
"""
FILES = ("results/auc-by-site.csv", "results/auc-by-site.png")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    st = service_stack(tmp_path_factory.mktemp("journey-export"), grants=[("alice", "lung")])
    yield st
    stop_service_stack(st, ("alice",))


@pytest.fixture(scope="module")
def browser(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def panel_row(lab, draft: str):
    return lab.locator(f".insitu-exports .insitu-drafts li[data-draft='{draft}']")


def shot(page, name: str) -> None:
    TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(TEST_ARTIFACTS / f"journey-export-{name}.png"))


def refused_download(browser, stack, user: str, url: str) -> int:
    """The status a logged-in ``user``'s browser gets for ``url``."""
    ctx, page = browser_login(browser, stack.public + "/exports", user, DEMO_PASSWORD)
    try:
        return ctx.request.get(url).status
    finally:
        ctx.close()


@pytest.mark.timeout(900)
def test_request_export_in_jupyterlab_follow_it_until_approved_and_download_it(stack, browser):
    hub, ds = stack.hub, stack.ds
    home = stack.homes / "alice" / "lung"

    # 1. alice logs in and starts a workspace: project lung, the granted dataset
    ctx, lab = browser_login(browser, hub.url + "/hub/login", "alice", DEMO_PASSWORD)
    lab.goto(hub.url + "/hub/spawn")
    lab.locator(f'input[name=dataset][value="{ds}"]').check()
    lab.locator("form input[type=submit], form button[type=submit]").first.click()
    lab.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=180_000)
    lab.wait_for_selector(".jp-DirListing-content", timeout=120_000)

    # 2. her results, written in the workspace by its own kernel (the sandbox: her uid, her home)
    ws = Workspace(hub.url + "/user/alice/", hub.token_for("alice"))
    assert "written" in (off_loop(ws.exec, RESULTS) or "")
    wanted = {name: (home / name).read_bytes() for name in FILES}
    assert wanted[FILES[1]].startswith(b"\x89PNG")

    # 3. both selected in the file browser, "Request export…", a justification
    lab.locator(".jp-DirListing-item[title^='Name: results']").first.dblclick()
    csv = lab.locator(".jp-DirListing-item[title^='Name: auc-by-site.csv']").first
    png = lab.locator(".jp-DirListing-item[title^='Name: auc-by-site.png']").first
    csv.click()
    png.click(modifiers=["Control"])
    png.click(button="right")
    lab.get_by_text("Request export…", exact=True).click()
    lab.locator(".jp-Dialog input").fill("AUC by site: table and figure for the abstract")
    lab.locator(".jp-Dialog .jp-mod-accept").click()
    lab.locator(".insitu-exports .insitu-drafts li[data-draft]").first.wait_for()
    (draft_file,) = (home / ".insitu" / "exports").glob("*.json")
    draft = draft_file.stem
    row = panel_row(lab, draft)
    assert all(name in row.inner_text() for name in FILES), row.inner_text()
    assert row.get_attribute("data-request") is None  # not submitted: nothing to follow yet
    # not signed in to the airlock in this browser yet: the panel says where the state will show
    assert "signed in to the airlock" in lab.locator(".insitu-exports .insitu-status-unknown").inner_text()

    # 4. "Submit for review" in the panel opens the airlock page (a new tab) with the draft; she submits it
    with ctx.expect_page() as opened:
        row.locator("a.insitu-submit").click()
    airlock = opened.value
    airlock.set_default_timeout(90_000)
    airlock.locator("#submit-draft").click()
    airlock.wait_for_selector("#files")
    rid = airlock.url.rstrip("/").rsplit("/", 1)[1]
    assert airlock.locator("h1 .badge").get_attribute("data-state") == "pending"
    assert airlock.locator("a.download").count() == 0
    shot(airlock, "01-submitted")

    # the request is frozen: the digests of her files, whatever happens in the home now
    with stack.api("alice") as c:
        view = c.get(f"/api/exports/{rid}").json()
    assert view["draft_id"] == draft and view["state"] == "pending"
    frozen = {f["name"]: f for f in view["files"]}
    assert {n: f["sha256"] for n, f in frozen.items()} == {n: hashlib.sha256(b).hexdigest() for n, b in wanted.items()}
    (home / FILES[0]).write_text("site,n_subjects,auc\nA,1,0.99\n")  # changed after submission

    # attack: no download before approval, not even for the requester
    first = f"{stack.public}/exports/{rid}/files/{frozen[FILES[0]]['file_id']}/download"
    assert ctx.request.get(first).status == 403
    with stack.api("alice") as c:
        assert c.get(f"/api/exports/{rid}/files/{frozen[FILES[0]]['file_id']}").status_code == 403

    # 5. the panel, open in JupyterLab's tab all along, follows the request: in review
    lab.bring_to_front()
    lab.wait_for_selector(f".insitu-drafts li[data-draft='{draft}'][data-state=pending]", state="attached")
    assert "in review" in row.inner_text() and row.get_attribute("data-request") == rid, row.inner_text()
    assert lab.locator(".insitu-exports .insitu-status-unknown").count() == 0
    shot(lab, "02-lab-in-review")

    # 6. dora, a reviewer, in her own browser: the queue, the request, a decision per file
    rctx, review = browser_login(browser, stack.public + "/exports", "dora", DEMO_PASSWORD)
    assert rid[:8] in review.locator("#queue").inner_text()
    review.goto(f"{stack.public}/exports/{rid}")
    for name in FILES:
        review.locator(f"input[name=file-{frozen[name]['file_id']}][value=approve]").check()
    review.locator("#decide-files").click()
    review.wait_for_selector("h1 .badge[data-state=approved]")
    assert review.locator("a.download").count() == 0  # reviewers never download
    assert rctx.request.get(first).status == 403
    shot(review, "03-reviewer-approved")
    rctx.close()

    # 7. JupyterLab's panel shows it approved, without a reload
    lab.wait_for_selector(f".insitu-drafts li[data-draft='{draft}'][data-state=approved]", state="attached")
    assert "approved" in row.inner_text() and "download it from the airlock page" in row.inner_text()
    shot(lab, "04-lab-approved")

    # 8. from the panel to the request's airlock page; each file downloaded is the file she asked for
    with ctx.expect_page() as opened:
        row.locator(f"a[href$='/exports/{rid}']").click()
    page = opened.value
    page.wait_for_selector("h1 .badge[data-state=approved]")
    for name in FILES:
        with page.expect_download() as dl:
            page.locator(f"tr[data-file='{name}'] a.download").click()
        got = Path(dl.value.path()).read_bytes()
        assert got == wanted[name], name
        assert hashlib.sha256(got).hexdigest() in page.locator(f"tr[data-file='{name}']").inner_text()
    shot(page, "05-downloaded")

    # attack: after approval, nobody else downloads it: a researcher of the same project, one of another
    # project (in their browsers and with their hub tokens)
    for other in ("carol", "bob"):
        assert refused_download(browser, stack, other, first) == 403, other
        r = httpx.get(f"{stack.base}/api/exports/{rid}/files/{frozen[FILES[0]]['file_id']}",
                      headers={"Authorization": f"token {stack.token(other)}"}, timeout=30)
        assert r.status_code == 403, (other, r.text)
    ctx.close()
