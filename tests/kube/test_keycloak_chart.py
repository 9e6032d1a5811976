"""The chart's Keycloak realm and the hub's reconciler settings, against a real Keycloak.

The session's Keycloak (tests/fixtures/keycloak.py: dev mode on loopback) imported
``helm/insitu/files/realm.json`` unchanged, which is what the chart's ConfigMap carries (checked
here on the chart rendered by real helm). The membership reconciler's client ``insitu-sync`` comes
from that file alone (nothing is added through the admin API): the hub's configuration, run with
the environment ``jupyterhub.hub.extraEnv`` sets (the Secret filled with the secret Keycloak
generated for the client, ``KEYCLOAK_URL`` pointed at this Keycloak), hands the reconciler the
settings with which ``hub.keycloak_sync`` reads the realm's groups; the client reads and cannot write.
The hub's login as the chart configures it (authenticator, client id and secret) is the realm's
``jupyterhub`` client, accepted by Keycloak's authorization and token endpoints.
"""

from __future__ import annotations

import json

import pytest
import yaml
from traitlets.config import Config

from hub import keycloak_dev
from hub.keycloak_sync import KeycloakSync

from .kubetools import CHART
from .test_helm_render import _values_args, chart, helm_template  # noqa: F401 - chart: the fixture

USERS = {"kc-chart-ana": ["researchers", "project-lung"], "kc-chart-dan": ["dac"]}


@pytest.fixture(scope="module")
def rendered(chart):  # noqa: F811 - the fixture imported above
    r = helm_template(chart, *_values_args(chart, CHART / "examples" / "minimal.yaml"))
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def test_the_chart_ships_the_realm_file_the_tests_import(rendered):
    cm = next(d for d in rendered if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "insitu-keycloak-realm")
    assert cm["data"]["insitu.json"] == keycloak_dev.REALM_FILE.read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["keycloak"]["keycloakConfigCli"]["existingConfigmap"] == cm["metadata"]["name"]


def _chart_hub_config(monkeypatch, kc_url: str, secrets: dict[str, str]) -> Config:
    """The hub's configuration as the chart makes it: ``jupyterhub.hub.extraEnv`` in the
    environment (Secret keys from ``secrets``, KEYCLOAK_URL pointed at this Keycloak), then
    ``extraConfig`` run."""
    hub = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]["hub"]
    for name, v in hub["extraEnv"].items():
        if isinstance(v, dict):
            v = secrets.get(v["valueFrom"]["secretKeyRef"]["key"], "token-" + name.lower())
        elif name == "KEYCLOAK_URL":
            assert v.startswith("http://insitu-keycloak")  # the Keycloak chart's Service in the cluster
            v = kc_url
        monkeypatch.setenv(name, str(v))
    c = Config()
    for code in hub["extraConfig"].values():
        exec(compile(code, "extraConfig", "exec"), {"c": c})
    return c


def _reconciler_env(monkeypatch, kc_url: str, secrets: dict[str, str]) -> dict[str, str]:
    """The insitu-hub service's environment as the chart's hub configuration makes it."""
    c = _chart_hub_config(monkeypatch, kc_url, secrets)
    svc = next(s for s in c.JupyterHub.services if s["name"] == "insitu-hub")
    assert "--keycloak-sync" in svc["command"]
    return svc["environment"]


def test_the_reconciler_reads_the_realm_with_the_settings_the_chart_gives_it(keycloak, monkeypatch):
    admin = keycloak.admin()
    for name, groups in USERS.items():
        keycloak_dev.ensure_user(admin, name, "kc-chart-password-1", groups)
    realm = json.loads(keycloak_dev.REALM_FILE.read_text())
    client_id = yaml.safe_load((CHART / "values.yaml").read_text())["jupyterhub"]["hub"]["extraEnv"][
        "KEYCLOAK_SYNC_CLIENT_ID"]
    assert client_id in {c["clientId"] for c in realm["clients"]}
    env = _reconciler_env(monkeypatch, keycloak.url, {"keycloak-sync": keycloak_dev.sync_client_secret(admin)})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sync = KeycloakSync.from_env(hub=None)  # what the reconciler builds from that environment
    members = sync.directory.membership()
    assert {g: members[g] & set(USERS) for g in ("researchers", "dac", "project-lung")} == {
        "researchers": {"kc-chart-ana"}, "dac": {"kc-chart-dan"}, "project-lung": {"kc-chart-ana"}}
    # without the secret the reconciler reads nothing
    monkeypatch.setenv("KEYCLOAK_SYNC_CLIENT_SECRET", "not-the-secret")
    from keycloak.exceptions import KeycloakError

    with pytest.raises(KeycloakError):
        KeycloakSync.from_env(hub=None).directory.membership()


def test_the_realm_gives_the_reconciler_read_only_access(keycloak):
    from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
    from keycloak.exceptions import KeycloakError

    admin = keycloak.admin()
    cid = admin.get_client_id(keycloak_dev.SYNC_CLIENT)
    client = admin.get_client(cid)
    assert client["serviceAccountsEnabled"] and not client["publicClient"]
    assert not (client["standardFlowEnabled"] or client["implicitFlowEnabled"] or client["directAccessGrantsEnabled"])
    account = admin.get_client_service_account_user(cid)
    rm = admin.get_client_id("realm-management")
    assert [r["name"] for r in admin.get_client_roles_of_user(account["id"], rm)] == ["view-users"]
    assert admin.get_realm_roles_of_user(account["id"]) == [] or all(
        r["name"].startswith("default-roles-") for r in admin.get_realm_roles_of_user(account["id"]))
    sync = KeycloakAdmin(connection=KeycloakOpenIDConnection(
        server_url=keycloak.url, realm_name=keycloak_dev.REALM, client_id=keycloak_dev.SYNC_CLIENT,
        client_secret_key=keycloak.sync_secret, timeout=10))
    assert sync.get_groups()  # reads
    with pytest.raises(KeycloakError) as refused:  # and Keycloak refuses it any change
        sync.create_user({"username": "kc-chart-intruder", "enabled": True})
    assert refused.value.response_code == 403
    assert admin.get_user_id("kc-chart-intruder") is None


def test_the_hub_login_the_chart_configures_is_the_realm_client(keycloak, monkeypatch):
    """The authenticator the chart's hub configuration names, with the client id and secret the chart
    hands it, against the realm: Keycloak shows its login form for that client and accepts the
    client's credentials at the token endpoint (an unknown code is then the only thing it refuses);
    a wrong secret is refused as a client."""
    import httpx
    from traitlets.utils.importstring import import_item

    realm = json.loads(keycloak_dev.REALM_FILE.read_text())
    client = next(c for c in realm["clients"] if c["clientId"] == keycloak_dev.HUB_CLIENT)
    c = _chart_hub_config(monkeypatch, keycloak.url, {"keycloak-hub": keycloak.hub_secret()})
    auth = import_item(c.JupyterHub.authenticator_class)(config=c)
    assert auth.client_id == keycloak_dev.HUB_CLIENT and auth.enable_pkce
    callback = client["redirectUris"][0]  # the realm's own (production sets oauth_callback_url to it)
    pkce = {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
    params = {"client_id": auth.client_id, "response_type": "code", "scope": "openid", "redirect_uri": callback}
    page = httpx.get(auth.authorize_url, params=params | pkce, timeout=30)
    assert page.status_code == 200 and 'id="kc-form-login"' in page.text
    # the realm requires PKCE of this client: without it Keycloak sends the browser back with an error
    bare = httpx.get(auth.authorize_url, params=params, timeout=30)
    assert bare.status_code == 302 and "error=invalid_request" in bare.headers["location"]
    unknown = httpx.get(auth.authorize_url, params=params | pkce | {"client_id": "not-a-client"}, timeout=30)
    assert unknown.status_code == 400

    def exchange(secret: str) -> httpx.Response:
        return httpx.post(auth.token_url, data={"grant_type": "authorization_code", "code": "not-a-code",
                                                "redirect_uri": callback}, auth=(auth.client_id, secret), timeout=30)

    r = exchange(auth.client_secret)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant"), r.text  # the client is known
    r = exchange("not-the-secret")
    assert r.status_code == 401 and r.json()["error"] in ("unauthorized_client", "invalid_client"), r.text
