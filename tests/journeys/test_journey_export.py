"""A researcher's export, as lived: JupyterLab's file browser → the airlock's review → the download.

One stack for the module (``journey_support.service_stack``): the real JupyterHub and
configurable-http-proxy, the sandbox spawner, and the real platform services behind them
(the dataset service with its SQL database and export airlock, the tracer). The demo
dataset is built by the real builder into the service's database, released by the data
manager and granted to project lung by two committee members through the API.

The platform's default mode: per-user and per-service origins (JupyterHub's ``subdomain_host``):
the hub at ``localhost``, alice's JupyterLab at ``alice.localhost``, the airlock at
``dataset-service--service.localhost``; cookies ``SameSite=Lax``, no CORS.

In Chromium alice logs in, starts a workspace (project lung, the dataset), has a table of
aggregate figures and a figure in ``results/``, selects both in the file browser and
chooses "Request export…". JupyterLab's exports panel shows the draft, not submitted; its
"Submit for review" links to the airlock's page on the airlock's origin, which she opens on
her other device (another browser) and submits the draft there: JupyterLab's browser never
signs in to the airlock. The panel, open all along, follows the request to "in review"
(the workspace gateway answers its states on JupyterLab's own origin: hub/gateway_exports.py).
dora (a data manager: the airlock's reviewer role) approves it file by file in her own
browser; the panel shows "approved" without a reload. alice opens the request from the
panel and downloads each file: the bytes are those of her workspace files. Refused all
along: the download before approval (to alice), and after it to another researcher of the
same project (carol), to a researcher of another project (bob) and to the reviewer; the
export states to bob's browser, to a caller without a session, to tokens (the workspace's
own server token, read by kernel code, and alice's), to a page of another origin in alice's
own browser, and to the workspace itself (its hub socket).
"""

from __future__ import annotations

import hashlib
import re
import time
from contextlib import contextmanager
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
    st = service_stack(tmp_path_factory.mktemp("journey-export"), grants=[("alice", "lung")], subdomains=True)
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


STATES_FROM_OTHER_ORIGIN = """async (url) => {
  try { const r = await fetch(url, {credentials: "include"}); return "read " + r.status + " " + (await r.text()); }
  catch (e) { return "refused: " + e; }
}"""
IN_THE_WORKSPACE = """
import os, socket
token = os.environ["JUPYTERHUB_API_TOKEN"]
print("TOKEN=" + token)
# its one way out is the hub socket (hub/forwarder.py); the proxy's port on loopback is not the host's
for path in ("/user/alice/insitu/export-status", "/hub/api/../../user/alice/insitu/export-status",
             "/services/dataset-service/api/users/alice/exports"):
    s = socket.socket(socket.AF_UNIX)
    s.connect("/run/insitu-hub/hub.sock")
    s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\nAuthorization: token {token}\\r\\n"
              "Connection: close\\r\\n\\r\\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    print("ANSWER", path, data.split(b"\\r\\n", 1)[0].decode(), "STATES" if b'"requests"' in data else "none")
try:
    socket.create_connection(("127.0.0.1", PROXY_PORT), timeout=5)
    print("PROXY REACHED")
except OSError as e:
    print("PROXY REFUSED", e)
"""


@contextmanager
def airlock_down(stack):
    """The dataset service (and its airlock) stopped, then started again on its port with the same app."""
    import threading

    import uvicorn

    stack.server.should_exit = True
    stack.thread.join(15)
    try:
        yield
    finally:
        server = uvicorn.Server(uvicorn.Config(stack.app, host="127.0.0.1", port=stack.port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        stack.server, stack.thread = server, thread
        assert server.started, "the dataset service did not start again"


def export_states_refused(browser, stack, lab, ws: Workspace, draft: str) -> None:
    """Nobody but alice's browser session reads her export states at her gateway's route."""
    hub = stack.hub
    route = hub.origin("alice") + "/user/alice/insitu/export-status"
    # alice's JupyterLab page reads them (what the panel does)
    mine = lab.evaluate(STATES_FROM_OTHER_ORIGIN.replace('credentials: "include"', 'credentials: "same-origin", '
                        'headers: {"X-XSRFToken": (document.cookie.match(/_xsrf=([^;]*)/) || [])[1] || ""}'), route)
    assert mine.startswith("read 200") and draft in mine, mine
    # bob, logged in to the hub, in his browser: the gateway's owner check (the hub refuses him the server)
    bctx, bpage = browser_login(browser, hub.url + "/hub/login", "bob", DEMO_PASSWORD)
    r = bctx.request.get(route)
    assert r.status == 403 and draft not in r.text(), (r.status, r.text()[:300])
    bctx.close()
    # no session: sent to the hub's login, nothing else
    r = httpx.get(route, timeout=30)
    assert r.status_code == 302 and "/hub/" in r.headers["location"] and draft not in r.text, r.status_code
    # kernel code reads the workspace's own server token; the sandbox's hub socket reaches neither route
    out = off_loop(ws.exec, IN_THE_WORKSPACE.replace("PROXY_PORT", str(hub.ports[0]))) or ""
    answers = [line.split() for line in out.splitlines() if line.startswith("ANSWER")]
    assert len(answers) == 3 and all(a[-1] == "none" and (len(a) == 3 or a[3].startswith("4")) for a in answers), out
    assert "PROXY REFUSED" in out, out
    server_token = out.split("TOKEN=", 1)[1].split()[0]
    for token in (server_token, hub.token_for("alice")):
        h = {"Authorization": f"token {token}"}
        assert httpx.get(hub.origin("alice") + "/user/alice/api/status", headers=h, timeout=30).status_code == 200
        r = httpx.get(route, headers=h, timeout=30)  # the gateway takes the token, this route does not
        assert r.status_code == 403 and draft not in r.text, (r.status_code, r.text)
        r = httpx.get(route, params={"token": token}, timeout=30)  # a token in the URL: not even a login
        assert r.status_code in (302, 403) and draft not in r.text, (r.status_code, r.text)
    # a page of another origin (here the hub's) in alice's own browser: no CORS, the cookie is not sent
    page = lab.context.new_page()
    page.goto(hub.url + "/hub/home")
    got = page.evaluate(STATES_FROM_OTHER_ORIGIN, route)
    assert got.startswith("refused") and draft not in got, got
    page.close()


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

    lab_origin = hub.origin("alice")
    assert lab.url.startswith(lab_origin + "/user/alice/") and lab_origin != hub.url  # her own origin

    # 2. her results, written in the workspace by its own kernel (the sandbox: her uid, her home)
    ws = Workspace(lab_origin + "/user/alice/", hub.token_for("alice"))
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
    # the states are had (from the gateway, on this origin): the draft is shown as not submitted
    lab.wait_for_selector(f".insitu-drafts li[data-draft='{draft}'][data-state=draft]", state="attached")
    assert lab.locator(".insitu-exports .insitu-status-unknown").count() == 0

    # 4. "Submit for review" links to the airlock's page, on the airlock's own origin, with the draft;
    # she opens it on her other device (another browser, signed in there) and submits it
    submit_url = row.locator("a.insitu-submit").get_attribute("href")
    assert submit_url == f"{stack.public}/exports/new?draft={draft}", submit_url
    actx, airlock = browser_login(browser, submit_url, "alice", DEMO_PASSWORD)
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
    assert actx.request.get(first).status == 403  # her browser signed in to the airlock
    with stack.api("alice") as c:
        assert c.get(f"/api/exports/{rid}/files/{frozen[FILES[0]]['file_id']}").status_code == 403

    # 5. the panel, open in JupyterLab's tab all along, follows the request: in review
    lab.bring_to_front()
    lab.wait_for_selector(f".insitu-drafts li[data-draft='{draft}'][data-state=pending]", state="attached")
    assert "in review" in row.inner_text() and row.get_attribute("data-request") == rid, row.inner_text()
    assert lab.locator(".insitu-exports .insitu-status-unknown").count() == 0
    shot(lab, "02-lab-in-review")
    actx.close()
    airlock_host = stack.public.split("//", 1)[1].split(":", 1)[0]
    assert not [c for c in ctx.cookies() if c["domain"].lstrip(".") == airlock_host]  # never signed in to it
    export_states_refused(browser, stack, lab, ws, draft)

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

    assert not [c for c in ctx.cookies() if c["domain"].lstrip(".") == airlock_host]

    # 8. from the panel to the request's airlock page (its own origin, signed in through the hub);
    # each file downloaded is the file she asked for
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

    # 9. the airlock goes down while the panel is open: one plain line says so, the drafts stay listed
    with airlock_down(stack):
        lab.bring_to_front()
        note = lab.locator(".insitu-exports .insitu-status-unknown")
        note.wait_for()
        assert "unavailable" in note.inner_text() and "cannot be reached" in note.inner_text(), note.inner_text()
        assert "state unavailable" in panel_row(lab, draft).inner_text()
        shot(lab, "06-lab-airlock-down")
    lab.wait_for_selector(f".insitu-drafts li[data-draft='{draft}'][data-state=approved]", state="attached")
    assert lab.locator(".insitu-exports .insitu-status-unknown").count() == 0
    ctx.close()
