"""Starting a workspace goes wrong: the researcher reads a plain message in the form, never a 500.

A real browser (Chromium through Playwright) logs carol in at the real hub
behind the real proxy and uses the options form: nothing ticked; a dataset
whose grant expired after the form was shown; the dataset service down. Each
time the form comes back (a 4xx or 503, never 500) with a sentence that says
what happened and what to do, nothing about logs, and no workspace starts.
The sessions API is the stand-in of ``tests/hub/sandbox_support.py``.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from journey_support import (REPO, StandInDatasetService, demo_layout, sandbox_hub_config, start_hub)
from tests.fixtures.jupyterhub import DEMO_PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey-errors")
    layout, ds = demo_layout(root, subjects=2)
    service = StandInDatasetService(layout, grants={("carol", "lung"): [ds]}).start()
    runtime_root = f"/tmp/insitu-je-{os.getpid()}"
    hub = start_hub(root / "hub", users={"carol": ["researchers", "project-lung"]},
                    extra_config=sandbox_hub_config(service, root / "homes", runtime_root))
    yield {"hub": hub, "service": service, "ds": ds}
    hub.stop()
    service.stop()
    shutil.rmtree(runtime_root, ignore_errors=True)


@pytest.fixture(scope="module")
def page(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(stack["hub"].url + "/hub/login")
        page.fill("#username_input", "carol")
        page.fill("#password_input", DEMO_PASSWORD)
        page.click("#login_submit")
        page.wait_for_url(re.compile(r".*/hub/(home|spawn).*"))
        yield page
        browser.close()


def submit(page, stack, *, tick: bool):
    page.goto(stack["hub"].url + "/hub/spawn")
    box = page.locator(f'input[name=dataset][value="{stack["ds"]}"]')
    if tick:
        box.check()
    with page.expect_response(re.compile(r".*/hub/spawn.*")) as resp:
        page.locator("form input[type=submit], form button[type=submit]").first.click()
    page.wait_for_load_state()
    return resp.value


def assert_plain(page, response, status: int, words: str):
    text = page.inner_text("body")
    assert response.status == status, (response.status, text[:800])
    assert words in text, text[:1500]
    for bad in ("500", "Internal Server Error", "hub log", "Traceback", "see the log"):
        assert bad not in text, (bad, text[:1500])
    assert page.locator("input[name=dataset]").count() >= 0  # the form is shown again


def test_form_shows_profiles_described_and_readable_dataset_names(stack, page):
    page.goto(stack["hub"].url + "/hub/spawn")
    text = page.inner_text("body")
    assert "Notebook (CPU)" in text and "2 CPU cores, 8 GiB memory, no GPU" in text, text[:1500]
    assert "LUNG CT DEMO" in text or "Lung CT demo" in text or stack["ds"].upper() in text


def test_no_dataset_ticked(stack, page):
    r = submit(page, stack, tick=False)
    assert_plain(page, r, 400, "Tick at least one dataset")
    assert not stack["service"].sessions


def test_grant_expired_after_the_form_was_shown(stack, page):
    page.goto(stack["hub"].url + "/hub/spawn")
    page.locator(f'input[name=dataset][value="{stack["ds"]}"]').check()
    saved = dict(stack["service"].grants)
    stack["service"].grants.clear()  # the grant ends while the form is open
    try:
        with page.expect_response(re.compile(r".*/hub/spawn.*")) as resp:
            page.locator("form input[type=submit], form button[type=submit]").first.click()
        page.wait_for_load_state()
        assert_plain(page, resp.value, 403, "its grant has expired or was revoked")
    finally:
        stack["service"].grants.update(saved)
    assert not stack["service"].sessions


def test_dataset_service_down(stack, page):
    page.goto(stack["hub"].url + "/hub/spawn")
    page.locator(f'input[name=dataset][value="{stack["ds"]}"]').check()
    stack["service"].down = True
    try:
        with page.expect_response(re.compile(r".*/hub/spawn.*")) as resp:
            page.locator("form input[type=submit], form button[type=submit]").first.click()
        page.wait_for_load_state()
        assert_plain(page, resp.value, 503, "The dataset service cannot be reached just now")
    finally:
        stack["service"].down = False
    assert not stack["service"].sessions
    assert REPO.exists()
