"""A researcher in JupyterLab, in a real browser: front door → start → export → revoked.

Chromium (Playwright) logs alice in at the real hub behind the real proxy. The
hub's home is the platform's (``hub/templates``) with the entries of her role;
she starts a workspace from the options form (project, profile, dataset), lands
in JupyterLab in the sandbox, selects two result files in the file browser,
chooses "Request export…" in the context menu, explains why, and follows the
draft in the Exports panel. Then the grant is revoked while a notebook with an
unsaved edit is open: the real revocation reconciler (``hub/reconciler.py``)
stops the workspace; before it goes, JupyterLab shows a notification that says
why and saves the notebook, and the hub's home says why afterwards. The sessions
API is the stand-in of ``tests/hub/sandbox_support.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
import time

import pytest

from journey_support import (CHROMIUM, CHROMIUM_ARGS as ARGS, StandInDatasetService, Workspace, browser_journey_marks,
                             demo_layout, off_loop, sandbox_hub_config, start_hub, wait_stopped)
from tests.fixtures.artifacts import TEST_ARTIFACTS
from tests.fixtures.jupyterhub import DEMO_PASSWORD

pytestmark = browser_journey_marks()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("journey-lab")
    layout, ds = demo_layout(root, subjects=2)
    homes = root / "homes"
    homes.mkdir()
    service = StandInDatasetService(layout, grants={("alice", "lung"): [ds]}).start()
    runtime_root = f"/tmp/insitu-jl-{os.getpid()}"
    notices = root / "stop-notices.json"
    config = sandbox_hub_config(service, homes, runtime_root) + f"""
from hub import frontdoor
frontdoor.configure(c, {str(notices)!r})
c.LocalSandboxSpawner.stop_notices_path = {str(notices)!r}
c.LocalSandboxSpawner.notice_grace = 4
c.JupyterHub.default_url = "/hub/home"
"""
    hub = start_hub(root / "hub", users={"alice": ["researchers", "project-lung"]}, extra_config=config)
    yield {"hub": hub, "service": service, "ds": ds, "home": homes / "alice" / "lung"}
    hub.api("DELETE", "/users/alice/server")
    try:
        wait_stopped(hub, "alice")
    finally:
        hub.stop()
        service.stop()
        shutil.rmtree(runtime_root, ignore_errors=True)


@pytest.fixture(scope="module")
def page(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.set_default_timeout(90_000)
        yield page
        browser.close()


def test_front_door_shows_what_a_researcher_can_do_and_starts_a_workspace(stack, page):
    hub = stack["hub"]
    page.goto(hub.url + "/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", DEMO_PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(r".*/hub/home.*"))
    nav = [a.inner_text().strip() for a in page.locator(".insitu-nav a").all()]
    assert nav[:5] == ["Home", "Catalogue", "My requests", "My grants", "Exports"], nav
    assert "Audit trail" not in nav and "Committee" not in nav and "Data management" not in nav
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    assert "Find datasets" in text and "My exports" in text and "The audit trail" not in text
    page.click("#start")
    page.wait_for_url(re.compile(r".*/hub/spawn.*"))
    page.locator(f'input[name=dataset][value="{stack["ds"]}"]').check()
    page.locator("form input[type=submit], form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=180_000)
    page.wait_for_selector(".jp-DirListing-content", timeout=120_000)
    # the home says what runs, with the dataset's name as the form showed it (the stand-in's name)
    page.goto(hub.url + "/hub/home")
    running = page.locator("#insitu-running").inner_text()
    assert "lung" in running and f"{stack['ds'].upper()} v1" in running, running
    page.goto(hub.url + "/user/alice/lab")
    page.wait_for_selector(".jp-DirListing-content", timeout=120_000)


def test_request_export_of_several_files_from_the_file_browser_and_follow_it(stack, page):
    hub = stack["hub"]
    ws = Workspace(hub.url + "/user/alice/", hub.token_for("alice"))
    off_loop(ws.exec, "import os; os.makedirs('results', exist_ok=True)\n"
             "open('results/metrics.csv', 'w').write('auc,0.81\\n'); open('results/fig.txt', 'w').write('figure\\n')")
    page.locator(".jp-DirListing-item[title^='Name: results']").first.dblclick()
    item = page.locator(".jp-DirListing-item[title^='Name: metrics.csv']").first
    item.wait_for()
    item.click()
    page.locator(".jp-DirListing-item[title^='Name: fig.txt']").first.click(modifiers=["Control"])
    page.locator(".jp-DirListing-item[title^='Name: fig.txt']").first.click(button="right")
    page.get_by_text("Request export…", exact=True).click()
    page.locator(".jp-Dialog input").fill("AUC table and figure for the abstract")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    panel = page.locator(".insitu-exports")
    panel.locator(".insitu-drafts li[data-draft]").first.wait_for()
    text = panel.inner_text()
    assert "results/metrics.csv" in text and "results/fig.txt" in text, text
    assert panel.locator("a.insitu-follow").get_attribute("href").endswith("/services/dataset-service/exports")
    drafts = list((stack["home"] / ".insitu" / "exports").glob("*.json"))
    assert len(drafts) == 1
    d = json.loads(drafts[0].read_text())
    assert sorted(f["name"] for f in d["files"]) == ["results/fig.txt", "results/metrics.csv"]
    assert d["justification"] == "AUC table and figure for the abstract"


KERNEL_IDLE = "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /\\|\\s*Idle/.test(e.textContent))"
STDERR = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"


@pytest.mark.timeout(900)
def test_open_an_example_from_the_file_browser_and_run_all_cells(stack, page):
    """As a person does it: the examples folder in the file browser, a double click on the notebook,
    Run → Run All Cells in the menu; the kernel is the workspace's, in the sandbox, on the granted dataset."""
    page.goto(stack["hub"].url + "/user/alice/lab")
    page.wait_for_selector(".jp-DirListing-content", timeout=120_000)
    page.locator(".jp-BreadCrumbs-home").first.click()
    page.locator(".jp-DirListing-item[title^='Name: examples']").first.dblclick()
    page.locator(".jp-DirListing-item[title^='Name: 01-explore.ipynb']").first.dblclick()
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=120_000)
    # the kernel first (JupyterLab may ask which one: the person keeps the default), then Run All
    deadline = time.monotonic() + 180
    while page.locator(".jp-Dialog").count() or not page.evaluate(KERNEL_IDLE):
        if page.locator(".jp-Dialog .jp-mod-accept").count():
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
        assert time.monotonic() < deadline, "the notebook's kernel did not start"
        page.wait_for_timeout(500)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # every code cell has run: its prompt holds a number, none is waiting ([*]) or never ran ([ ]);
    # JupyterLab may ask which kernel to start: the person keeps the default (Select)
    prompts = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt"
    deadline = time.monotonic() + 400
    while not page.evaluate("""(sel) => {
            const p = [...document.querySelectorAll(sel)];
            return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent));
        }""", prompts):
        if page.locator(".jp-Dialog .jp-mod-accept").count():
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
        failed = [t for t in page.locator(STDERR).all_text_contents() if "Traceback" in t or "Error" in t]
        assert not failed, failed[0]  # JupyterLab renders a cell's error as stderr; Run All stops there
        if time.monotonic() > deadline:
            TEST_ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(TEST_ARTIFACTS / "journey-run-all.png"))
            raise AssertionError(f"Run All did not finish; prompts: {page.locator(prompts).all_inner_texts()}")
        page.wait_for_timeout(1000)
    failed = [t for t in page.locator(STDERR).all_text_contents() if "Traceback" in t or "Error" in t]
    assert not failed, failed[0]
    text = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").text_content()
    assert "1 dataset(s) mounted at /mnt/datasets" in text and stack["ds"] in text, text[:2000]
    assert "/opt/insitu/python/insitu_workspace/datasets.py" in text  # the workspace's library, not a checkout
    assert json.loads((stack["home"] / "examples" / "results" / "01-explore.json").read_text())
    # saved, as a person does before moving on
    page.keyboard.press("Control+s")
    page.wait_for_selector(".lm-TabBar-tab.lm-mod-current:not(.jp-mod-dirty)", state="attached", timeout=60_000)


THEMES = "/lab/api/settings/@jupyterlab/apputils-extension:themes"


def test_theme_and_open_notebook_are_kept_when_the_workspace_is_stopped_and_started_from_the_home(stack, page):
    """A person's second start: the dark theme chosen in the Settings menu and the notebook left open
    come back after Stop my workspace and Start on the hub's home (a kernel has run: ~/.ipython exists,
    which used to break every second start)."""
    hub = stack["hub"]
    ws = Workspace(hub.url + "/user/alice/", hub.token_for("alice"))
    page.goto(hub.url + "/user/alice/lab/tree/examples/01-explore.ipynb")
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=120_000)
    if page.locator(".jp-Dialog").count():  # a kernel choice: keep the default
        page.locator(".jp-Dialog .jp-mod-accept").first.click()
    with page.expect_response(lambda r: THEMES in r.url and r.request.method == "PUT") as saved:
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
        page.locator(".lm-Menu-itemLabel", has_text="JupyterLab Dark").first.click()
    assert saved.value.status == 204, saved.value.status
    page.wait_for_selector("body[data-jp-theme-name='JupyterLab Dark']", state="attached")
    # JupyterLab stores its layout by itself (debounced): wait until the open notebook is in it
    deadline = time.monotonic() + 60
    while "examples/01-explore.ipynb" not in json.dumps(ws.get("lab/api/workspaces/default").json()):
        assert time.monotonic() < deadline, ws.get("lab/api/workspaces/default").text[:2000]
        page.wait_for_timeout(500)
    assert (stack["home"] / ".ipython").is_dir()  # a kernel ran in this home

    page.goto(hub.url + "/hub/home")
    page.click("#stop")
    page.locator("#start").wait_for(timeout=120_000)
    wait_stopped(hub, "alice")
    page.goto(hub.url + "/hub/home")
    page.click("#start")
    page.wait_for_url(re.compile(r".*/hub/spawn.*"))
    page.locator(f'input[name=dataset][value="{stack["ds"]}"]').check()
    page.locator("form input[type=submit], form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=180_000)
    page.wait_for_selector("body[data-jp-theme-name='JupyterLab Dark']", state="attached", timeout=120_000)
    tab = page.locator(".lm-TabBar-tab", has_text="01-explore.ipynb").first
    tab.wait_for(timeout=120_000)
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for(timeout=120_000)


def test_revoked_grant_notifies_saves_and_the_home_says_why(stack, page):
    hub, service = stack["hub"], stack["service"]
    nb = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [], "execution_count": None}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    ws = Workspace(hub.url + "/user/alice/", hub.token_for("alice"))
    assert ws.put("api/contents/analysis.ipynb", {"type": "notebook", "format": "json", "content": nb}).status_code in (200, 201)
    page.goto(hub.url + "/user/alice/lab/tree/analysis.ipynb")
    editor = page.locator(".jp-Notebook .jp-Cell .cm-content").filter(has_text="x = 1").first
    editor.wait_for(timeout=120_000)
    if page.locator(".jp-Dialog").count():  # e.g. a kernel choice: keep the default
        page.locator(".jp-Dialog .jp-mod-accept").first.click()
    editor.click()
    page.keyboard.press("End")
    page.keyboard.type("  # unsaved edit")
    page.wait_for_selector(".jp-mod-dirty", timeout=30_000)

    service.grants[("alice", "lung")] = []  # the committee revokes the grant
    from dataset_service.client import DatasetServiceClient
    from hub.reconciler import HubAPI, RevocationReconciler

    report = {}

    def reconcile():
        rec = RevocationReconciler(HubAPI(hub.api_url, hub.token_for("insitu-hub")),
                                   DatasetServiceClient(service.url, service.token))
        report["r"] = asyncio.run(rec.run_once())

    t = threading.Thread(target=reconcile)
    t.start()
    try:
        # JupyterLab's <body> has no height of its own (the shell is positioned): attached, not "visible"
        page.wait_for_selector("body[data-insitu-saved]", state="attached", timeout=60_000)
    except Exception:
        t.join(120)
        raise AssertionError(f"no notice in JupyterLab; reconciler: {report}\n{hub.log()[-5000:]}") from None
    toast = page.locator(".jp-toast-message, .Toastify__toast").filter(has_text="Access ended")
    toast.first.wait_for(timeout=30_000)
    assert "grant revoked" in toast.first.inner_text()
    t.join(120)
    assert report["r"].stopped == ["alice/"], report
    saved = json.loads((stack["home"] / "analysis.ipynb").read_text())
    src = saved["cells"][0]["source"]
    assert "# unsaved edit" in ("".join(src) if isinstance(src, list) else src)
    wait_stopped(hub, "alice")
    page.goto(hub.url + "/hub/home")
    notice = page.locator("#insitu-stop-notice")
    assert "Access ended" in notice.inner_text() and "grant revoked" in notice.inner_text()
    assert f"{stack['ds'].upper()} v1" in notice.inner_text()  # the dataset's name, not only its id
