"""End-to-end export in a real headless Chromium: workspace command -> draft -> submission in the
browser -> review by a data manager -> download by the requester, through the hub's proxy and OAuth."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airlock_files import dicom_bytes, png_bytes
from fixtures.jupyterhub import DEMO_PASSWORD, REPO
from fixtures.artifacts import TEST_ARTIFACTS

pytestmark = pytest.mark.browser

ARTIFACTS = TEST_ARTIFACTS / "airlock"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def login(browser, stack, user: str, path: str):
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(stack.st.public + path)
    page.wait_for_selector("input[name=username]", timeout=30000)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"**{path.split('?')[0]}*", timeout=30000)
    return ctx, page


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def run_export_command(home: Path, session_id: str, *files: str, justification: str) -> str:
    env = {"HOME": str(home), "INSITU_SESSION_ID": session_id, "PATH": os.environ.get("PATH", ""),
           "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-m", "hub.workspace.export", *files, "--justification", justification],
                         cwd=home, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "exports/new?draft=" in x)
    return line.rsplit("draft=", 1)[1].strip()


def test_end_to_end_export_in_a_browser(airlock_stack, browser):
    a = airlock_stack
    sid, ds = a.open_session("cleo", "exports-b")
    home = a.home("cleo", "exports-b")  # the home of the session's project
    fig, table = png_bytes(480, 360), b"model,n,dice\nunet,48,0.83\nsegresnet,48,0.81\n"
    a.write("cleo", "results/fig1.png", fig, project="exports-b")
    a.write("cleo", "results/summary.csv", table, project="exports-b")
    a.write("cleo", "results/scan.dcm", dicom_bytes(), project="exports-b")

    # 1. in the workspace: the export command writes a draft with the digests
    draft = run_export_command(home, sid, "results/fig1.png", "results/summary.csv",
                               justification="Figure 1 and the summary table of the segmentation paper")

    # 2. cleo submits the draft in the browser
    ctx_c, page = login(browser, a, "cleo", "/exports")
    assert page.locator("#drafts").inner_text().count("results/fig1.png") == 1
    shot(page, "01-researcher-drafts")
    page.click(f"a[href$='draft={draft}']")
    page.click("#submit-draft")
    page.wait_for_selector("#files")
    url = page.url
    rid = url.rstrip("/").rsplit("/", 1)[1]
    assert page.locator("h1 .badge").get_attribute("data-state") == "pending"
    assert page.locator("a.download").count() == 0
    shot(page, "02-researcher-pending")

    # the workspace copy changes after the request: the review is not affected
    a.write("cleo", "results/fig1.png", png_bytes(64, 64), project="exports-b")

    # a second request, chosen on the page: a DICOM file, flagged
    page.goto(a.st.public + "/exports/new")
    page.check("input[value='results/scan.dcm']")
    page.fill("#justification", "one slice to show the annotation tool")
    page.click("#submit")
    page.wait_for_selector("#files")
    rid2 = page.url.rstrip("/").rsplit("/", 1)[1]
    assert page.locator("li[data-code=dicom]").count() == 1
    shot(page, "03-researcher-dicom-flagged")
    # the requester sees no review form on their own requests
    assert page.locator("#review-form").count() == 0

    # 3. dora reviews: findings and previews, approve the first, reject the DICOM one
    ctx_d, rpage = login(browser, a, "dora", "/exports")
    assert rid[:8] in rpage.locator("#queue").inner_text()
    shot(rpage, "04-reviewer-queue")
    rpage.goto(a.st.public + f"/exports/{rid}")
    img = rpage.locator(".preview img")
    img.wait_for()
    assert rpage.evaluate("() => document.querySelector('.preview img').naturalWidth") == 320
    assert "unet" in rpage.locator(".preview table").first.inner_text()
    row = rpage.locator("tr[data-file='results/fig1.png']")
    assert hashlib.sha256(fig).hexdigest() in row.inner_text()
    shot(rpage, "05-reviewer-request")
    rpage.click("#approve")
    rpage.wait_for_selector("h1 .badge[data-state=approved]")
    shot(rpage, "06-reviewer-approved")
    assert rpage.locator("a.download").count() == 0  # reviewers never download

    rpage.goto(a.st.public + f"/exports/{rid2}")
    rpage.click("#reject")  # without a reason: refused, nothing changes
    assert "reason" in rpage.locator("#error").inner_text()
    rpage.fill("#reason", "a DICOM file with patient headers cannot leave")
    rpage.click("#reject")
    rpage.wait_for_selector("h1 .badge[data-state=rejected]")
    shot(rpage, "07-reviewer-rejected")
    r = ctx_d.request.get(a.st.public + f"/exports/{rid}/files/1/download")
    assert r.status == 403

    # 4. cleo downloads the approved files, with their digests; the rejected one never leaves
    page.goto(a.st.public + f"/exports/{rid}")
    assert page.locator("h1 .badge").get_attribute("data-state") == "approved"
    shot(page, "08-researcher-approved")
    with page.expect_download() as dl:
        page.click("tr[data-file='results/fig1.png'] a.download")
    path = dl.value.path()
    got = Path(path).read_bytes()
    assert got == fig and hashlib.sha256(got).hexdigest() in page.locator("tr[data-file='results/fig1.png']").inner_text()
    page.goto(a.st.public + f"/exports/{rid2}")
    assert page.locator("a.download").count() == 0
    assert "patient headers" in page.locator("#decision-reason").inner_text()
    shot(page, "09-researcher-rejected")
    with a.api("cleo") as c:
        v = c.get(f"/api/exports/{rid2}").json()
        assert c.get(f"/api/exports/{rid2}/files/{v['files'][0]['file_id']}").status_code == 403
    for ctx in (ctx_c, ctx_d):
        ctx.close()
