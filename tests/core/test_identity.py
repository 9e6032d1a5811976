"""insitu.identity against a real JupyterHub: tokens, scopes, roles, services, revocation, browser sessions."""

from __future__ import annotations

import re
import secrets
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fixtures.jupyterhub import DEMO_PASSWORD, free_port, start_hub
from insitu.identity import (
    CurrentIdentity,
    HubAuthConfig,
    Identity,
    install_hub_auth,
    login_router,
    require_roles,
    require_service,
)
from typing import Annotated
from fastapi import Depends


def make_app(api_url: str, service_name: str = "tracer", **cfg) -> FastAPI:
    app = FastAPI()
    install_hub_auth(app, HubAuthConfig(api_url=api_url, service_name=service_name, **cfg))
    app.include_router(login_router())

    @app.get("/whoami")
    def whoami(who: CurrentIdentity):
        return {"name": who.name, "kind": who.kind, "roles": sorted(who.roles), "projects": sorted(who.projects)}

    @app.get("/audit")
    def audit(who: Annotated[Identity, Depends(require_roles("auditors"))]):
        return {"ok": who.name}

    @app.get("/hub-only")
    def hub_only(who: Annotated[Identity, Depends(require_service("insitu-hub"))]):
        return {"ok": who.name}

    return app


@pytest.fixture(scope="module")
def client(hub_server):
    # the app stands for the tracer: every token must carry access:services!service=tracer
    with TestClient(make_app(hub_server.api_url, cache_ttl=0)) as c:
        yield c


def get(client, path, token=None, scheme="token"):
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    return client.get(path, headers=headers)


def scoped_token(hub, user: str, scopes: list[str], **extra) -> tuple[str, str]:
    # made by the user (as on the hub's token page): only the owner may narrow its own scopes
    r = hub.api("POST", f"/users/{user}/tokens", token=hub.token_for(user),
                json={"note": "scope test", "scopes": scopes, **extra})
    r.raise_for_status()
    return r.json()["token"], r.json()["id"]


def test_no_token_is_401(client):
    r = get(client, "/whoami")
    assert r.status_code == 401
    assert "token" in r.json()["detail"]


def test_unknown_token_is_401(client):
    assert get(client, "/whoami", secrets.token_hex(16)).status_code == 401
    assert client.get("/whoami", headers={"Authorization": "Basic abc"}).status_code == 401


def test_user_roles_and_projects_come_from_hub_groups(client, hub_server):
    r = get(client, "/whoami", hub_server.token_for("carol"), scheme="Bearer")
    assert r.status_code == 200
    assert r.json() == {"name": "carol", "kind": "user", "roles": ["researchers"], "projects": ["brain", "lung"]}


def test_service_identity(client, hub_server):
    r = get(client, "/whoami", hub_server.token_for("dataset-service"))
    assert r.json()["kind"] == "service" and r.json()["name"] == "dataset-service"


@pytest.mark.parametrize("user,status", [("audrey", 200), ("admin", 200), ("alice", 403), ("dora", 403), ("nobody", 403)])
def test_role_check(client, hub_server, user, status):
    assert get(client, "/audit", hub_server.token_for(user)).status_code == status


@pytest.mark.parametrize("caller,status", [("insitu-hub", 200), ("dataset-service", 403), ("admin", 403), ("alice", 403)])
def test_service_check_refuses_users_and_other_services(client, hub_server, caller, status):
    assert get(client, "/hub-only", hub_server.token_for(caller)).status_code == status


# --- scopes: the token's, not its owner's ------------------------------------------------------------

def test_identify_only_token_of_an_auditor_cannot_read(client, hub_server):
    """The attack of issue 11 item 4: an auditor's identify-only token read every trace."""
    # the narrowest token the hub makes: it only identifies its owner (JupyterHub adds the identify scopes)
    token, _ = scoped_token(hub_server, "audrey", ["read:users:name!user=audrey"])
    assert hub_server.api("GET", "/user", token=token).json()["name"] == "audrey"  # the hub knows it
    r = get(client, "/audit", token)
    assert r.status_code == 403
    assert "access:services!service=tracer" in r.json()["detail"]
    assert get(client, "/whoami", token).status_code == 403


def test_token_for_another_service_is_refused(client, hub_server):
    token, _ = scoped_token(hub_server, "audrey", ["access:services!service=dataset-service"])
    assert get(client, "/audit", token).status_code == 403


def test_token_with_this_services_scope_is_accepted(client, hub_server):
    token, _ = scoped_token(hub_server, "audrey", ["access:services!service=tracer"])
    assert get(client, "/audit", token).json() == {"ok": "audrey"}


def test_workspace_server_token_is_refused(client, hub_server):
    """The scopes JupyterHub gives a single-user server's own token (Spawner.server_token_scopes default)."""
    token, _ = scoped_token(hub_server, "audrey", ["access:servers!server=audrey/", "users:activity!user=audrey"])
    assert get(client, "/audit", token).status_code == 403


def test_service_without_the_access_scope_is_refused(hub_server):
    """The tracer service itself holds no access to the dataset service."""
    with TestClient(make_app(hub_server.api_url, service_name="dataset-service", cache_ttl=0)) as c:
        assert get(c, "/whoami", hub_server.token_for("tracer")).status_code == 403
        assert get(c, "/whoami", hub_server.token_for("insitu-hub")).status_code == 200


# --- revocation and expiry within the stated cache time ----------------------------------------------

def test_revoked_token_stops_within_the_cache_time(hub_server):
    ttl = 2
    with TestClient(make_app(hub_server.api_url, cache_ttl=ttl)) as c:
        token, token_id = scoped_token(hub_server, "audrey", ["access:services!service=tracer"])
        assert get(c, "/audit", token).status_code == 200
        hub_server.api("DELETE", f"/users/audrey/tokens/{token_id}", token=hub_server.token_for("audrey")).raise_for_status()
        time.sleep(ttl + 0.5)
        assert get(c, "/audit", token).status_code == 401


def test_expired_token_stops_within_the_cache_time(hub_server):
    ttl = 1
    with TestClient(make_app(hub_server.api_url, cache_ttl=ttl)) as c:
        token, _ = scoped_token(hub_server, "audrey", ["access:services!service=tracer"], expires_in=2)
        assert get(c, "/audit", token).status_code == 200
        time.sleep(2 + ttl + 0.5)
        assert get(c, "/audit", token).status_code == 401


def test_removed_group_takes_effect(client, hub_server):
    hub_server.add_user("eve", ["auditors"])
    token = hub_server.token_for("eve")
    assert get(client, "/audit", token).status_code == 200
    hub_server.set_groups("eve", [])
    assert get(client, "/audit", token).status_code == 403


def test_hub_down_fails_closed():
    app = make_app(f"http://127.0.0.1:{free_port()}/hub/api")
    with TestClient(app) as c:
        r = get(c, "/whoami", "anything")
    assert r.status_code == 503


# --- browser sessions ---------------------------------------------------------------------------------

def test_session_cookie_is_secure_when_served_over_https(hub_server):
    cfg = dict(api_token="t" * 32, client_id="service-tracer", oauth_callback_url="https://hub.example/cb")
    with TestClient(make_app(hub_server.api_url, public_hub_url="https://hub.example", **cfg)) as c:
        r = c.get("/login", follow_redirects=False)
        assert r.status_code == 302 and "code_challenge=" in r.headers["location"]
        cookie = r.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    with TestClient(make_app(hub_server.api_url, public_hub_url="http://127.0.0.1:1", **cfg)) as c:
        assert "secure" not in c.get("/login", follow_redirects=False).headers["set-cookie"].lower()


def test_unsigned_or_tampered_session_cookie_is_refused(client, hub_server):
    """A raw hub token in the cookie (the old format) is not a session: a cookie must be signed by the service."""
    auth = client.app.state.hub_auth
    token = hub_server.token_for("audrey")
    name = auth.config.cookie_name
    assert client.get("/audit", cookies={name: auth.session_value(token)}).status_code == 200
    assert client.get("/audit", cookies={name: token}).status_code == 401
    forged = auth.session_value(token)[:-2] + ("AA" if not auth.session_value(token).endswith("AA") else "BB")
    assert client.get("/audit", cookies={name: forged}).status_code == 401


def _serve(app, port):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.05)
    return server, t


def test_browser_session_is_accepted_only_by_its_own_service(tmp_path):
    """Full OAuth code flow (hub login → authorize with PKCE → callback → signed cookie), then the session
    of service A is tried on service B: as B's cookie, and as a bearer token."""
    ports = {"svc-a": free_port(), "svc-b": free_port()}
    tokens = {n: secrets.token_hex(24) for n in ports}
    callbacks = {n: f"http://127.0.0.1:{p}/oauth_callback" for n, p in ports.items()}
    hub = start_hub(tmp_path / "hub", services=[
        {"name": n, "api_token": tokens[n], "oauth_client_id": f"service-{n}", "oauth_redirect_uri": callbacks[n],
         "oauth_no_confirm": True} for n in ports])
    servers = []
    try:
        apps = {n: make_app(hub.api_url, service_name=n, api_token=tokens[n], client_id=f"service-{n}",
                            oauth_callback_url=callbacks[n], public_hub_url=hub.url) for n in ports}
        servers = [_serve(apps[n], ports[n]) for n in ports]
        a, b = (f"http://127.0.0.1:{ports[n]}" for n in ("svc-a", "svc-b"))
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            page = browser.get(hub.url + "/hub/login")
            xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
            browser.post(hub.url + "/hub/login", data={"username": "audrey", "password": DEMO_PASSWORD, "_xsrf": xsrf})
            r = browser.get(a + "/login", params={"next": "/audit"})
            assert r.status_code == 200, r.text
            assert r.json() == {"ok": "audrey"}
            # a forged state is refused
            assert browser.get(a + "/oauth_callback", params={"code": "x", "state": "forged"}).status_code == 400
        session_a = browser.cookies.get("insitu-svc-a-session")
        assert session_a
        # the same cookie value, offered to service B under B's own cookie name: not B's signature
        assert httpx.get(b + "/audit", cookies={"insitu-svc-b-session": session_a}).status_code == 401
        # the OAuth token inside A's session carries only A's access scope: B refuses it
        token_a = apps["svc-a"].state.hub_auth.token_from_session(session_a)
        assert token_a
        assert httpx.get(a + "/audit", headers={"Authorization": f"token {token_a}"}).status_code == 200
        r = httpx.get(b + "/audit", headers={"Authorization": f"token {token_a}"})
        assert r.status_code == 403, r.text
    finally:
        for server, t in servers:
            server.should_exit = True
            t.join(10)
        hub.stop()
