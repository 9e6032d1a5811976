"""``python -m hub up --keycloak``: the demo users and groups in a real Keycloak.

The default suite checks the provisioning (``hub.up_keycloak.provision``) on the
session's Keycloak (tests/fixtures/keycloak.py; its realm is already imported
there) and that the environment it returns is all a hub needs: every demo user
logs in through Keycloak with the groups of ``hub.up.DEMO_USERS``, and
``hub.up.DemoUser`` (what ``up`` uses to create the demo content) logs in
through Keycloak when the authenticator is Keycloak. The whole command, end to
end, is the slow test below.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from fixtures.jupyterhub import REPO, free_port, start_hub
from hub import keycloak_dev, up_keycloak
from hub.up import DEMO_USERS, DemoUser


@pytest.fixture(scope="module")
def up_hub(keycloak, tmp_path_factory):
    accounts = {u: (f"pw-{u}-demo-1", groups) for u, (groups, _) in DEMO_USERS.items()}
    env = up_keycloak.provision(keycloak.server, "http://127.0.0.1:1", accounts, import_realm=False)
    assert env["INSITU_AUTHENTICATOR"] == "keycloak" and env["KEYCLOAK_URL"] == keycloak.url
    hub_env = {k: v for k, v in env.items() if k != "OAUTH_CALLBACK_URL"}
    extra = ('c.JupyterHub.authenticator_class = "hub.auth.KeycloakAuthenticator"\n'
             'c.KeycloakAuthenticator.oauth_callback_url = c.JupyterHub.bind_url + "/hub/oauth_callback"\n'
             "c.Authenticator.allowed_users = set()\n")
    hub = start_hub(tmp_path_factory.mktemp("upkc"), users={}, extra_config=extra, env=hub_env)
    keycloak.allow_callback(hub.url + "/hub/oauth_callback")
    hub.accounts, hub.env = accounts, env
    yield hub
    hub.stop()


def test_every_demo_user_logs_in_through_keycloak_with_their_groups(up_hub):
    for name, (password, groups) in up_hub.accounts.items():
        _, r = keycloak_dev.login(keycloak_dev.browser_client(), up_hub.url, name, password)
        assert r.status_code == 302, (name, up_hub.log()[-2000:])
        model = up_hub.api("GET", f"/users/{name}").json()
        assert sorted(model["groups"]) == sorted(groups), name
        assert model["admin"] is ("admins" in groups)


def test_demo_user_of_make_up_logs_in_through_keycloak(up_hub, monkeypatch):
    monkeypatch.setenv("INSITU_AUTHENTICATOR", "keycloak")
    dora = DemoUser(up_hub.url, "dora", up_hub.accounts["dora"][0])
    try:
        r = httpx.get(up_hub.api_url + "/user", headers={"Authorization": f"token {dora.token}"})
        assert r.json()["name"] == "dora" and r.json()["groups"] == ["data-managers"]
    finally:
        dora.close()
    with pytest.raises(RuntimeError):
        DemoUser(up_hub.url, "dora", "not-the-password")


def test_the_reconciler_reads_keycloak_with_the_environment_up_sets(up_hub):
    from hub.keycloak_sync import KeycloakDirectory

    env = up_hub.env
    directory = KeycloakDirectory.connect(env["KEYCLOAK_URL"], env["KEYCLOAK_REALM"],
                                          env["KEYCLOAK_SYNC_CLIENT_ID"], env["KEYCLOAK_SYNC_CLIENT_SECRET"])
    members = directory.membership()
    for name, (_, groups) in up_hub.accounts.items():
        for g in groups:
            assert name in members[g], (name, g)


@pytest.mark.slow
@pytest.mark.sandbox
@pytest.mark.timeout(1500)
def test_make_up_with_keycloak_end_to_end(tmp_path):
    """The real command: Keycloak, the hub and its services, the demo content created by
    users who logged in through Keycloak; Ctrl-C stops Keycloak too."""
    if not keycloak_dev.installed():
        pytest.skip("Keycloak is not set up (scripts/setup.d/40-keycloak.sh)")
    from test_up import Up

    up = Up(tmp_path / "var")
    kc_port = free_port()
    up.env["INSITU_KEYCLOAK_PORT"] = str(kc_port)
    up.proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "up", "--keycloak", "--port", str(up.port), "--var", str(up.var),
         "--lake-subjects", "6"], cwd=REPO, env=up.env, stdout=open(up.out, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while "insitu is running at" not in up.output():
        assert up.proc.poll() is None and time.monotonic() < deadline, up.output() + up.hub_log()
        time.sleep(1)
    try:
        logins = json.loads((up.var / "secrets" / "demo-logins.json").read_text())
        assert json.loads((up.var / "demo.json").read_text())["grant_id"]
        _, r = keycloak_dev.login(keycloak_dev.browser_client(), up.url, "alice", logins["alice"])
        assert r.status_code == 302
        with pytest.raises(RuntimeError):  # Keycloak keeps a wrong password at its login form
            keycloak_dev.login(keycloak_dev.browser_client(), up.url, "alice", "wrong")
    finally:
        up.proc.send_signal(signal.SIGINT)
        up.proc.wait(90)
    assert up.proc.returncode == 0, up.output()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{kc_port}/realms/master", timeout=3)
