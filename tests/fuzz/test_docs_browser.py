"""The API docs pages (Swagger UI) load in a real browser from local assets only and show the
operations, for both services, through the hub's proxy (issue 13 item 4, issue 19)."""
from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from fixtures.jupyterhub import REPO
from fixtures.artifacts import TEST_ARTIFACTS

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = TEST_ARTIFACTS / "docs"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.mark.parametrize("service", ["dataset-service", "tracer"])
def test_docs_page_renders_from_local_assets(governance_stack, browser, service):
    st = governance_stack
    url = f"{st.public}/docs" if service == "dataset-service" else f"{st.tracer.url}/docs"
    allowed = urlsplit(url).netloc
    ctx = browser.new_context()
    page = ctx.new_page()
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    page.route("**/*", lambda route: route.continue_() if urlsplit(route.request.url).netloc == allowed
               or route.request.url.startswith("data:") else route.abort())
    try:
        resp = page.goto(url)
        assert resp is not None and resp.status == 200
        page.wait_for_selector(".opblock", timeout=30000)
        n_ops = page.locator(".opblock").count()
        title = page.locator(".info .title").inner_text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{service}-docs.png"), full_page=False)
    finally:
        ctx.close()
    external = [u for u in seen if not u.startswith("data:") and urlsplit(u).netloc != allowed]
    assert external == [], external
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in seen), seen
    assert any(u.endswith("/openapi.json") for u in seen), seen
    assert n_ops >= (20 if service == "dataset-service" else 5), n_ops
    assert "insitu" in title.lower(), title
