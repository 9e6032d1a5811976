"""Keycloak logins against a real Keycloak (dev mode on loopback, one per test
session, tests/fixtures/keycloak.py) with the chart's realm imported unchanged.

The hub is a real JupyterHub + configurable-http-proxy with
``hub.auth.KeycloakAuthenticator`` (authorization code + PKCE, the
``jupyterhub`` client of realm.json, its group-membership mapper sending the
``groups`` claim). One login is done by a real headless Chromium on Keycloak's
own login page; the others walk the same pages with httpx.
"""

from __future__ import annotations

import html
import os
import re
import textwrap
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from fixtures.jupyterhub import REPO, start_hub
from fixtures.artifacts import TEST_ARTIFACTS
from fixtures.keycloak import keycloak_login
from hub import keycloak_dev

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = TEST_ARTIFACTS / "hub"

USERS = {  # user → groups in Keycloak
    "ana": ["researchers", "project-lung"],
    "ben": ["researchers"],
    "root1": ["admins"],
    "nobody": ["project-lung"],  # a project but no role group
}
PASSWORD = "kc-test-password-1"


@pytest.fixture(scope="module")
def kc_hub(keycloak, tmp_path_factory):
    admin = keycloak.admin()
    for name, groups in USERS.items():
        keycloak_dev.ensure_user(admin, name, PASSWORD, groups)
    extra = textwrap.dedent(f"""
        PUBLIC = c.JupyterHub.bind_url
        c.JupyterHub.authenticator_class = "hub.auth.KeycloakAuthenticator"
        c.KeycloakAuthenticator.keycloak_url = {keycloak.url!r}
        c.KeycloakAuthenticator.realm = {keycloak_dev.REALM!r}
        c.KeycloakAuthenticator.client_id = {keycloak_dev.HUB_CLIENT!r}
        c.KeycloakAuthenticator.client_secret = {keycloak.hub_secret()!r}
        c.KeycloakAuthenticator.oauth_callback_url = PUBLIC + "/hub/oauth_callback"
        c.Authenticator.allowed_users = set()
    """)
    hub = start_hub(tmp_path_factory.mktemp("kchub"), users={}, extra_config=extra)
    keycloak.allow_callback(hub.url + "/hub/oauth_callback")
    hub.kc = keycloak
    yield hub
    hub.stop()


def _login(hub, name, password=PASSWORD):
    return keycloak_login(hub.url, hub.kc.url, name, password)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.mark.browser
def test_browser_login_through_keycloak_maps_groups(kc_hub, browser):
    """A person opens the hub, is sent to Keycloak, types their password, lands on the hub."""
    ctx = browser.new_context()
    page = ctx.new_page()
    seen = []
    page.on("request", lambda req: seen.append(req.url))
    page.goto(kc_hub.url + "/hub/oauth_login?next=/hub/home")
    page.wait_for_selector("#kc-form-login")
    assert page.url.startswith(f"{kc_hub.kc.url}/realms/insitu/protocol/openid-connect/auth")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "keycloak-login.png"))
    page.fill("#username", "ana")
    page.fill("#password", PASSWORD)
    page.click("#kc-login")
    page.wait_for_url(kc_hub.url + "/hub/home", timeout=60_000)
    page.screenshot(path=str(SHOTS / "keycloak-logged-in.png"))
    assert "ana" in page.content()
    authorize = next(u for u in seen if "/protocol/openid-connect/auth?" in u)
    q = parse_qs(urlparse(authorize).query)
    assert q["response_type"] == ["code"] and q["code_challenge_method"] == ["S256"]
    callback = next(u for u in seen if u.startswith(kc_hub.url + "/hub/oauth_callback?"))
    assert parse_qs(urlparse(callback).query)["code"][0]
    model = kc_hub.api("GET", "/users/ana").json()
    assert sorted(model["groups"]) == ["project-lung", "researchers"]
    assert model["admin"] is False
    ctx.close()


@pytest.mark.browser
def test_browser_user_without_role_group_is_refused(kc_hub, browser):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(kc_hub.url + "/hub/oauth_login?next=/hub/home")
    page.fill("#username", "nobody")
    page.fill("#password", PASSWORD)
    with page.expect_response(lambda r: "/hub/oauth_callback" in r.url) as resp:
        page.click("#kc-login")
    assert resp.value.status == 403
    page.wait_for_load_state()
    page.screenshot(path=str(SHOTS / "keycloak-refused.png"))
    assert "no insitu role" in page.inner_text("body")
    assert kc_hub.api("GET", "/users/nobody").status_code == 404
    page.goto(kc_hub.url + "/hub/home")
    assert "/hub/login" in page.url or "/realms/insitu/" in page.url  # not logged in
    ctx.close()


def test_admins_group_makes_a_hub_admin(kc_hub):
    _, r = _login(kc_hub, "root1")
    assert r.status_code == 302, kc_hub.log()[-3000:]
    model = kc_hub.api("GET", "/users/root1").json()
    assert model["admin"] is True and model["groups"] == ["admins"]


def test_wrong_password_never_reaches_the_hub(kc_hub):
    c = keycloak_dev.browser_client()
    r = c.get(kc_hub.url + "/hub/oauth_login?next=/hub/home")
    page = c.get(r.headers["location"])
    action = html.unescape(re.search(r'id="kc-form-login"[^>]*action="([^"]+)"', page.text).group(1))
    r = c.post(action, data={"username": "ben", "password": "wrong"})
    assert r.status_code == 200 and "Invalid username or password" in r.text
    assert kc_hub.api("GET", "/users/ben").status_code == 404


def test_forged_callback_is_refused(kc_hub):
    """A code or state that the hub did not issue does not log anybody in."""
    c = httpx.Client(follow_redirects=False, timeout=30)
    r = c.get(kc_hub.url + "/hub/oauth_login?next=/hub/home")
    state = parse_qs(urlparse(r.headers["location"]).query)["state"][0]
    r = c.get(kc_hub.url + f"/hub/oauth_callback?code=forged&state={state}")
    assert r.status_code == 403
    assert "refused the authorization code" in r.text
    assert c.get(kc_hub.url + "/hub/home").status_code == 302
    r = httpx.get(kc_hub.url + "/hub/oauth_callback?code=forged&state=" + state, follow_redirects=False)
    assert r.status_code == 400 and "state" in r.text.lower()  # no state cookie


def test_project_group_changes_in_keycloak_apply_at_next_login(kc_hub):
    admin = kc_hub.kc.admin()
    _, r = _login(kc_hub, "ben")
    assert r.status_code == 302
    assert kc_hub.api("GET", "/users/ben").json()["groups"] == ["researchers"]
    keycloak_dev.set_groups(admin, "ben", ["researchers", "project-brain"])  # joins a project
    _, r = _login(kc_hub, "ben")
    assert r.status_code == 302
    assert sorted(kc_hub.api("GET", "/users/ben").json()["groups"]) == ["project-brain", "researchers"]
    keycloak_dev.set_groups(admin, "ben", ["project-brain"])  # loses the role: refused
    _, r = _login(kc_hub, "ben")
    assert r.status_code == 403 and "no insitu role" in r.text
