"""Keycloak logins: a full OpenID Connect authorization-code + PKCE login.

Keycloak cannot run here; ``oidc-provider-mock`` is a real OIDC provider (it
signs ID tokens, checks the PKCE verifier, serves userinfo) and is given users
with Keycloak-shaped claims: ``preferred_username`` and a ``groups`` claim with
full group paths, as Keycloak's group-membership mapper sends them. The login
goes through a real JupyterHub and configurable-http-proxy with
``hub.auth.KeycloakAuthenticator``; httpx plays the browser.
"""

from __future__ import annotations

import textwrap
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from oidc_provider_mock import User, run_server_in_thread

from fixtures.jupyterhub import start_hub

KEYCLOAK_USERS = [
    User(sub="f3a1-alice", claims={"preferred_username": "alice", "email": "alice@example.org",
                                   "groups": ["/researchers", "/project-lung", "/offline_access"]}),
    User(sub="f3a1-carol", claims={"preferred_username": "carol",
                                   "groups": ["/researchers", "/projects/project-lung", "/projects/project-brain"]}),
    User(sub="f3a1-root", claims={"preferred_username": "root1", "groups": ["/admins"]}),
    User(sub="f3a1-nobody", claims={"preferred_username": "nobody", "groups": ["/project-lung", "/staff"]}),
]


@pytest.fixture(scope="module")
def oidc_hub(tmp_path_factory):
    with run_server_in_thread(user_claims=KEYCLOAK_USERS, require_nonce=False) as provider:
        issuer = f"http://localhost:{provider.server_port}"
        work = tmp_path_factory.mktemp("oidchub")
        extra = textwrap.dedent(f"""
            c.JupyterHub.authenticator_class = "hub.auth.KeycloakAuthenticator"
            c.KeycloakAuthenticator.authorize_url = {issuer + "/oauth2/authorize"!r}
            c.KeycloakAuthenticator.token_url = {issuer + "/oauth2/token"!r}
            c.KeycloakAuthenticator.userdata_url = {issuer + "/userinfo"!r}
            c.KeycloakAuthenticator.client_id = "insitu-hub"
            c.KeycloakAuthenticator.client_secret = "insitu-hub-secret"
            c.KeycloakAuthenticator.oauth_callback_url = PUBLIC + "/hub/oauth_callback"
            c.Authenticator.allowed_users = set()
        """)
        # the callback must be the proxy's public URL, known only after start: read it from the bind_url
        extra = "PUBLIC = c.JupyterHub.bind_url\n" + extra
        hub = start_hub(work, users={}, extra_config=extra)
        hub.issuer = issuer
        yield hub
        hub.stop()


def _oidc_login(hub, sub: str) -> tuple[httpx.Client, httpx.Response]:
    """Walk the authorization-code flow like a browser; returns the hub's answer to the callback."""
    c = httpx.Client(follow_redirects=False, timeout=30)
    r = c.get(hub.url + "/hub/oauth_login?next=/hub/home")
    assert r.status_code == 302, r.text
    authorize = r.headers["location"]
    q = parse_qs(urlparse(authorize).query)
    assert authorize.startswith(hub.issuer + "/oauth2/authorize")
    assert q["response_type"] == ["code"] and q["client_id"] == ["insitu-hub"]
    assert q["code_challenge_method"] == ["S256"] and q["code_challenge"][0]
    assert "openid" in q["scope"][0].split()
    # the provider's consent page, then the user picks their account (POST)
    page = c.get(authorize)
    assert page.status_code == 200
    r = c.post(authorize, data={"sub": sub})
    assert r.status_code == 302, r.text
    callback = r.headers["location"]
    assert callback.startswith(hub.url + "/hub/oauth_callback?")
    assert "code=" in callback
    return c, c.get(callback)


def test_keycloak_login_maps_groups(oidc_hub):
    c, r = _oidc_login(oidc_hub, "f3a1-alice")
    assert r.status_code == 302, oidc_hub.log()[-3000:]
    assert r.headers["location"].endswith("/hub/home")
    assert c.get(oidc_hub.url + "/hub/home").status_code == 200
    model = oidc_hub.api("GET", "/users/alice").json()
    assert sorted(model["groups"]) == ["project-lung", "researchers"]
    assert model["admin"] is False


def test_keycloak_subgroup_paths_and_admins(oidc_hub):
    _, r = _oidc_login(oidc_hub, "f3a1-carol")
    assert r.status_code == 302
    assert sorted(oidc_hub.api("GET", "/users/carol").json()["groups"]) == [
        "project-brain", "project-lung", "researchers"]
    _, r = _oidc_login(oidc_hub, "f3a1-root")
    assert r.status_code == 302
    assert oidc_hub.api("GET", "/users/root1").json()["admin"] is True


def test_keycloak_user_without_role_group_is_refused(oidc_hub):
    c, r = _oidc_login(oidc_hub, "f3a1-nobody")
    assert r.status_code == 403
    assert "no insitu role" in r.text
    assert oidc_hub.api("GET", "/users/nobody").status_code == 404
    r = c.get(oidc_hub.url + "/hub/home")
    assert r.status_code == 302 and "/hub/login" in r.headers["location"]


def test_forged_callback_is_refused(oidc_hub):
    """A code or state that the hub did not issue does not log anybody in."""
    c = httpx.Client(follow_redirects=False, timeout=30)
    r = c.get(oidc_hub.url + "/hub/oauth_login?next=/hub/home")
    state = parse_qs(urlparse(r.headers["location"]).query)["state"][0]
    r = c.get(oidc_hub.url + f"/hub/oauth_callback?code=forged&state={state}")
    assert r.status_code == 403
    assert "refused the authorization code" in r.text
    assert c.get(oidc_hub.url + "/hub/home").status_code == 302
    r = httpx.get(oidc_hub.url + "/hub/oauth_callback?code=forged&state=" + state, follow_redirects=False)
    assert r.status_code == 400 and "state" in r.text.lower()  # no state cookie


def test_group_removed_in_keycloak_is_removed_at_next_login(oidc_hub):
    _oidc_login(oidc_hub, "f3a1-alice")
    assert "project-lung" in oidc_hub.api("GET", "/users/alice").json()["groups"]
    r = httpx.put(oidc_hub.issuer + "/users/f3a1-alice",
                  json={"preferred_username": "alice", "groups": ["/researchers"]})
    assert r.status_code == 204
    _, r = _oidc_login(oidc_hub, "f3a1-alice")
    assert r.status_code == 302
    assert oidc_hub.api("GET", "/users/alice").json()["groups"] == ["researchers"]
