"""hub.identity against a real JupyterHub: tokens, roles, services, browser login."""

from __future__ import annotations

import re
import secrets
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI

from fixtures.jupyterhub import DEMO_PASSWORD, free_port, start_hub
from hub.identity import (
    HubAuthConfig,
    Identity,
    current_identity,
    install_hub_auth,
    login_router,
    require_roles,
    require_service,
)


def make_app(api_url: str, **cfg) -> FastAPI:
    app = FastAPI()
    install_hub_auth(app, HubAuthConfig(api_url=api_url, **cfg))
    app.include_router(login_router())

    @app.get("/whoami")
    def whoami(who: Identity = Depends(current_identity)):
        return {"name": who.name, "kind": who.kind, "roles": sorted(who.roles), "projects": sorted(who.projects)}

    @app.get("/audit")
    def audit(who: Identity = Depends(require_roles("auditors"))):
        return {"ok": who.name}

    @app.get("/hub-only")
    def hub_only(who: Identity = Depends(require_service("insitu-hub"))):
        return {"ok": who.name}

    return app


@pytest.fixture(scope="module")
def client(hub_server):
    from fastapi.testclient import TestClient

    with TestClient(make_app(hub_server.api_url, cache_ttl=0)) as c:
        yield c


def get(client, path, token=None, scheme="token"):
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    return client.get(path, headers=headers)


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


def test_removed_group_takes_effect(client, hub_server):
    hub_server.add_user("eve", ["auditors"])
    token = hub_server.token_for("eve")
    assert get(client, "/audit", token).status_code == 200
    hub_server.set_groups("eve", [])
    assert get(client, "/audit", token).status_code == 403


def test_hub_down_fails_closed():
    from fastapi.testclient import TestClient

    app = make_app(f"http://127.0.0.1:{free_port()}/hub/api")
    with TestClient(app) as c:
        r = get(c, "/whoami", "anything")
    assert r.status_code == 503


def test_browser_login_through_hub_oauth(tmp_path):
    """Full OAuth code flow: hub login → authorize → callback → cookie → identity."""
    app_port = free_port()
    token = secrets.token_hex(24)
    callback = f"http://127.0.0.1:{app_port}/oauth_callback"
    hub = start_hub(
        tmp_path / "hub",
        services=[{
            "name": "idtest", "api_token": token, "oauth_client_id": "service-idtest",
            "oauth_redirect_uri": callback, "oauth_no_confirm": True,
        }],
    )
    try:
        app = make_app(hub.api_url, api_token=token, client_id="service-idtest", oauth_callback_url=callback,
                       public_hub_url=hub.url, cookie_name="idtest-auth")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=app_port, log_level="warning"))
        t = threading.Thread(target=server.run, daemon=True)
        t.start()
        while not server.started:
            time.sleep(0.05)
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            page = browser.get(hub.url + "/hub/login")
            xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
            browser.post(hub.url + "/hub/login", data={"username": "alice", "password": DEMO_PASSWORD, "_xsrf": xsrf})
            r = browser.get(f"http://127.0.0.1:{app_port}/login", params={"next": "/whoami"})
            assert r.status_code == 200, r.text
            assert r.json()["name"] == "alice"
            assert "idtest-auth" in browser.cookies
            # a forged state is refused
            bad = browser.get(f"http://127.0.0.1:{app_port}/oauth_callback", params={"code": "x", "state": "forged"})
            assert bad.status_code == 400
        server.should_exit = True
        t.join(10)
    finally:
        hub.stop()
