"""End to end in a real headless Chromium (Debian's, driven by Playwright).

Each user logs in on the hub's own login page and reaches the dataset
service's pages through the hub's proxy and OAuth. A researcher asks for
access, two DAC members approve, the grant appears on the researcher's page,
a DAC member revokes it and it disappears. Screenshots go to
``$INSITU_TEST_ARTIFACTS/web/`` (a temporary folder by default).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from fixtures.jupyterhub import DEMO_PASSWORD, REPO
from fixtures.artifacts import TEST_ARTIFACTS

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = TEST_ARTIFACTS / "web"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def catalogue(governance_stack):
    st = governance_stack
    studies = lambda n, mod, part, cancer, prefix: [  # noqa: E731
        (f"{prefix}-{i:03d}", f"study-{j}", mod if j == 0 else "PT" if mod == "CT" else mod, part, cancer)
        for i in range(n) for j in range(2)]
    ids = {
        "lung": st.add_dataset("LUNG1 radiomics cohort", studies=studies(12, "CT", "CHEST", "lung", "lu"),
                               description="Pre-treatment CT and PET-CT of non-small-cell lung cancer patients, "
                                           "with clinical outcome eForms.", tags=["radiomics", "nsclc"]),
        "prostate": st.add_dataset("Prostate MRI", studies=studies(8, "MR", "PROSTATE", "prostate", "pr"),
                                   description="Multiparametric prostate MRI with biopsy-confirmed labels.",
                                   license="CC-BY-4.0", tags=["mpMRI"]),
        "breast": st.add_dataset("Breast DCE-MRI", studies=studies(5, "MR", "BREAST", "breast", "br"), version=2,
                                 description="Dynamic contrast-enhanced breast MRI before neoadjuvant therapy."),
        "draft": st.add_dataset("Colon CT (draft)", state="draft"),
    }
    return ids


def login(browser, st, user):
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    page = ctx.new_page()
    page.goto(st.public + "/")
    # not logged in: the service sends the browser to the hub's login page
    page.wait_for_url(re.compile(r".*/hub/login.*"))
    page.fill("#username_input", user)
    page.fill("#password_input", DEMO_PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(re.escape(st.public) + r"/(\?.*)?$"))
    return ctx, page


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_request_approve_grant_revoke(browser, governance_stack, catalogue):
    st = governance_stack
    lung = catalogue["lung"]

    # researcher: browse, filter, open the dataset, ask for access
    ctx, page = login(browser, st, "alice")
    assert page.get_by_role("heading", name="Find a dataset").is_visible()
    assert page.locator(".dataset-card").filter(has_text="LUNG1 radiomics cohort").count() == 1
    assert "Colon CT (draft)" not in page.content()  # drafts are not in the catalogue
    shot(page, "01-catalogue")
    page.get_by_role("link", name=re.compile("^CHEST")).click()
    assert page.locator(".dataset-card").count() >= 1
    assert "Prostate MRI" not in page.locator("section[aria-label=Results]").inner_text()
    page.get_by_role("link", name="LUNG1 radiomics cohort").first.click()
    assert page.get_by_role("heading", name="Request access").is_visible()
    shot(page, "02-dataset")
    page.select_option("#project", "lung")
    page.fill("#purpose", "Validate a radiomics signature for 2-year survival in NSCLC.")
    page.fill("#intended_use", "Feature extraction with pyradiomics, Cox models.")
    page.fill("#duration_days", "120")
    page.get_by_role("button", name="Send request").click()
    page.wait_for_url(re.compile(r".*/my/requests\?notice=requested"))
    card = page.locator(".request-card").filter(has_text="LUNG1 radiomics cohort")
    assert "submitted" in card.inner_text().lower() and "0/2 approvals" in card.inner_text()
    shot(page, "03-my-requests")
    rid = int(re.search(r"request-(\d+)", card.get_attribute("id")).group(1))

    # dac3 is in project-lung: the page does not offer the vote, and a forged post is refused
    ctx3, p3 = login(browser, st, "dac3")
    p3.goto(st.public + "/dac")
    assert "another member of the committee reviews this one" in p3.locator(f"#request-{rid}").inner_text()
    ctx3.close()

    # two DAC members approve
    for i, reviewer in enumerate(("dac1", "dac2")):
        c, p = login(browser, st, reviewer)
        p.goto(st.public + "/dac")
        if i == 0:
            shot(p, "04-dac-queue")
        item = p.locator(f"#request-{rid}")
        if i == 0:  # reject without a reason: the browser's own form check stops it, nothing is sent
            item.get_by_role("button", name="Reject").click()
            assert p.url.endswith("/dac") and item.locator(f"#objection-{rid}:invalid").count() == 1
        item.locator(f"#reason-{rid}").fill("Proportionate to the purpose." if i else "")
        item.get_by_role("button", name="Approve").click()
        p.wait_for_url(re.compile(r".*/dac\?notice=voted"))
        if i == 0:
            assert "1/2 approvals" in p.locator(f"#request-{rid}").inner_text()
        c.close()

    # the grant appears for alice
    page.goto(st.public + "/my/grants")
    row = page.locator("#active-grants tr").filter(has_text="LUNG1 radiomics cohort")
    assert row.count() == 1 and "lung" in row.inner_text()
    shot(page, "05-my-grants")
    page.goto(st.public + "/my/requests")
    assert "approved" in page.locator(f"#request-{rid}").inner_text().lower()
    shot(page, "05b-my-requests-decided")
    page.locator(f"#request-{rid}").get_by_role("link", name=f"#{rid}").click()  # the request's own page
    page.wait_for_url(re.compile(rf".*/requests/{rid}$"))
    assert "Proportionate to the purpose." in page.locator("#round-1").inner_text()
    shot(page, "05c-request-history")
    # the dataset page now says the project holds it, instead of offering a second request
    page.goto(st.public + f"/datasets/{lung}")
    assert "holds a grant until" in page.locator("#held-lung").inner_text()
    assert page.get_by_text("Ask for an extension").count() >= 1 and page.locator("#purpose").count() == 0
    with st.api("insitu-hub") as api:
        assert lung in [x["dataset_id"] for x in api.get("/api/users/alice/usable-datasets").json()]

    # a DAC member revokes it
    c, p = login(browser, st, "dac1")
    p.goto(st.public + "/dac")
    grant_row = p.locator("#active-grants tr").filter(has_text="LUNG1 radiomics cohort")
    shot(p, "06-dac-grants")
    grant_row.get_by_role("link", name="Revoke…").click()  # first a page that says what it ends
    p.wait_for_url(re.compile(r".*/dac/grants/\d+/revoke$"))
    assert p.get_by_role("heading", name=re.compile("Revoke project lung")).is_visible()
    assert "nothing is stopped" in p.locator("#stops").inner_text()
    shot(p, "06b-revoke-confirm")
    p.fill("#reason", "Ethics approval withdrawn")
    p.get_by_role("button", name="Revoke").click()
    p.wait_for_url(re.compile(r".*/dac\?notice=revoked"))
    assert p.locator("#active-grants tr").filter(has_text="LUNG1 radiomics cohort").count() == 0
    c.close()

    page.goto(st.public + "/my/grants")
    assert page.locator("#active-grants tr").filter(has_text="LUNG1 radiomics cohort").count() == 0
    assert "Ethics approval withdrawn" in page.content()
    shot(page, "07-my-grants-after-revoke")
    with st.api("insitu-hub") as api:
        assert lung not in [x["dataset_id"] for x in api.get("/api/users/alice/usable-datasets").json()]
    ctx.close()


def test_data_manager_and_error_pages(browser, governance_stack, catalogue):
    st = governance_stack
    ctx, page = login(browser, st, "dora")
    page.goto(st.public + "/manage")
    assert page.locator(f"tr[data-dataset='{catalogue['draft']}']").count() == 1
    shot(page, "08-manage")
    page.set_viewport_size({"width": 820, "height": 1000})  # a small laptop window: one column
    page.goto(st.public + "/")
    shot(page, "10-catalogue-narrow")
    page.goto(st.public + "/dac")
    assert page.get_by_role("heading", name="Not for your role").is_visible()
    shot(page, "09-forbidden")
    ctx.close()
