"""Per-user origins, attacked in a real browser (issue 11, item 1).

A real JupyterHub with ``subdomain_host`` (as ``hub.config`` sets it for the
embedded default): the hub at ``localhost``, alice's server at
``alice.localhost``, the dataset service at ``dataset-service--service.localhost``;
the real dataset service and tracer behind it. A DAC member (dac1) logs in
with a real Chromium on the hub and on the dataset service's pages, then opens
a page that alice controls. The page runs alice's JavaScript in dac1's browser
and tries, with dac1's cookies, to

* approve alice's own access request (API call and the committee page's form),
* read a page of the dataset service,
* create a hub API token for dac1.

The workspace gateway (tests/hub/test_gateway_hub.py) already keeps alice's
server from serving anything to dac1; here the page is delivered at alice's
origin by the browser itself (Playwright's request routing), the worst case of
a page alice got in front of dac1 some other way: the origin is what must
hold. Each attempt is checked where it would land: no vote, no token, no page
content came back.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest

from fixtures.governance_stack import PREFIX, GovernanceStack, Tracer
from fixtures.jupyterhub import DEMO_PASSWORD, free_port, start_hub

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    import uvicorn

    from dataset_service.app import create_app
    from dataset_service.settings import Settings

    workdir = tmp_path_factory.mktemp("origins")
    port = free_port()
    proxy_port, api_port, hub_port = free_port(), free_port(), free_port()
    ds_origin = f"http://dataset-service--service.localhost:{proxy_port}"
    hub = start_hub(
        workdir / "hub", subdomains=True, ports=(proxy_port, api_port, hub_port),
        services=[{"name": "dataset-service", "url": f"http://127.0.0.1:{port}",
                   "oauth_client_id": "service-dataset-service",
                   "oauth_redirect_uri": f"{ds_origin}{PREFIX}/oauth_callback", "oauth_no_confirm": True}],
        extra_config="""
c.JupyterHub.load_roles.append({
    "name": "insitu-dataset-service",
    "scopes": ["read:users", "list:users", "read:groups", "list:groups"],
    "services": ["dataset-service"],
})
# users as the platform has them (hub.services): tokens only for the roles that script the APIs
from hub.services import role_definitions
c.JupyterHub.load_roles = [r for r in c.JupyterHub.load_roles if r["name"] != "user"] + \\
    [r for r in role_definitions() if r["name"] in ("user", "insitu-api-tokens")]
""",
    )
    assert hub.origin("dataset-service", "service") == ds_origin
    tracer = Tracer(port=free_port(), workdir=workdir, hub_api_url=hub.api_url)
    tracer.start()
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'dataset-service.sqlite'}",
        lake_dir=workdir / "lake", datasets_dir=workdir / "datasets",
        hub_api_url=hub.api_url, hub_api_token=hub.token_for("dataset-service"),
        hub_client_id="service-dataset-service", oauth_callback_url=f"{ds_origin}{PREFIX}/oauth_callback",
        public_hub_url=hub.url, service_prefix=PREFIX, identity_cache_ttl=5,
        tracer_url=tracer.url, tracer_token=hub.token_for("dataset-service"), pseudonym_key="k",
    )
    app = create_app(settings, recover_builds=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "dataset service did not start"
        time.sleep(0.05)
    st = GovernanceStack(hub=hub, tracer=tracer, app=app, port=port, workdir=workdir, server=server, thread=thread)
    yield st, ds_origin + PREFIX
    st.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


ATTACK = """<!doctype html><title>my results</title><script>
const DS = %(ds)s, HUB = %(hub)s, RID = %(rid)s;
const results = {};
async function attempt(name, fn) {
  try {
    const r = await fn();
    let body = "";
    try { body = (await r.text()).slice(0, 300); } catch (e) {}
    results[name] = {status: r.status, type: r.type, body};
  } catch (e) { results[name] = {error: String(e)}; }
}
(async () => {
  const vote = JSON.stringify({decision: "approve", reason: "fine by me"});
  await attempt("vote_api", () => fetch(DS + "/api/access-requests/" + RID + "/votes", {method: "POST",
      credentials: "include", headers: {"Content-Type": "application/json"}, body: vote}));
  await attempt("vote_api_simple", () => fetch(DS + "/api/access-requests/" + RID + "/votes", {method: "POST",
      credentials: "include", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: vote}));
  await attempt("vote_form", () => fetch(DS + "/dac/requests/" + RID + "/review", {method: "POST",
      credentials: "include", mode: "no-cors", body: new URLSearchParams({decision: "approve", reason: "ok"})}));
  await attempt("read_page", () => fetch(DS + "/dac", {credentials: "include"}));
  await attempt("read_page_opaque", () => fetch(DS + "/dac", {credentials: "include", mode: "no-cors"}));
  await attempt("mint_token", () => fetch(HUB + "/hub/api/users/dac1/tokens", {method: "POST",
      credentials: "include", headers: {"Content-Type": "application/json"}, body: "{}"}));
  await attempt("mint_token_simple", () => fetch(HUB + "/hub/api/users/dac1/tokens", {method: "POST",
      credentials: "include", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"}));
  window.results = results;
})();
</script>"""


def test_a_page_at_alices_origin_cannot_act_as_a_dac_member(stack, browser):
    st, ds_public = stack
    hub = st.hub
    ds = st.add_dataset("Origin cohort")
    with st.api("alice") as c:
        r = c.post("/api/access-requests", json={"dataset_id": ds, "project": "lung", "duration_days": 30,
                                                 "purpose": "train a nodule detector", "intended_use": "training"})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]

    ctx = browser.new_context()
    page = ctx.new_page()
    # dac1 logs in on the hub, then on the dataset service's pages (its own origin, OAuth)
    page.goto(ds_public + "/dac")
    page.wait_for_url(re.compile(r"^http://localhost:\d+/hub/login.*"))
    page.fill("#username_input", "dac1")
    page.fill("#password_input", DEMO_PASSWORD)
    page.click("#login_submit")
    page.wait_for_url(re.compile(re.escape(ds_public) + r"/dac.*"))
    assert "Origin cohort" in page.content()  # dac1 really can vote here, through the page
    # (logging in made dac1 an OAuth token for the service: what is there now is the baseline)
    tokens_before = {t["id"] for t in hub.api("GET", "/users/dac1/tokens").json()["api_tokens"]}

    evil = hub.origin("alice") + "/user/alice/results.html"
    assert evil.startswith("http://alice.localhost:")
    html = ATTACK % {"ds": json.dumps(ds_public), "hub": json.dumps(hub.url), "rid": json.dumps(rid)}
    page.route(evil, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    page.goto(evil)
    page.wait_for_function("window.results !== undefined", timeout=30000)
    results = page.evaluate("window.results")

    # nothing readable came back: CORS errors or opaque answers without a body
    for name, res in results.items():
        assert "error" in res or res["type"] == "opaque", (name, res)
        assert not res.get("body"), (name, res)
    # and nothing happened where it would have landed
    assert st.sql("select count(*) from access_votes where request_id = :r", r=rid)[0][0] == 0
    with st.api("alice") as c:
        assert c.get(f"/api/access-requests/{rid}").json()["state"] == "submitted"
    tokens_after = {t["id"] for t in hub.api("GET", "/users/dac1/tokens").json()["api_tokens"]}
    assert tokens_after == tokens_before
    # control: the same read from a page on the service's own origin does come back, so what
    # stopped the attempts above is the origin boundary, not a broken session
    control = ds_public + "/origin-control.html"
    page.route(control, lambda route: route.fulfill(status=200, content_type="text/html", body=(
        "<script>fetch(%s, {credentials: 'include'}).then(r => r.text()).then(t => window.got = t)"
        ".catch(e => window.got = 'ERR ' + e)</script>" % json.dumps(ds_public + "/dac"))))
    page.goto(control)
    page.wait_for_function("window.got !== undefined", timeout=30000)
    assert "Origin cohort" in page.evaluate("window.got")
    ctx.close()
