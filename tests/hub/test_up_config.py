"""The hub configuration as a pure function of the insitu settings."""

from __future__ import annotations

import json
import stat

from traitlets.config import Config

from hub.config import configure_hub
from hub.service_tokens import ensure_secrets
from hub.services import role_definitions
from hub.settings import InsituHub


def _configured(tmp_path, **settings):
    c = Config()
    for k, v in settings.items():
        setattr(c.InsituHub, k, v)
    c.InsituHub.var_dir = str(tmp_path / "var")
    s = InsituHub(config=c)
    configure_hub(c, s)
    return c, s


def test_embedded_default_runs_the_services_managed(tmp_path, monkeypatch):
    for k in ("INSITU_MODE", "INSITU_HUB_PORT", "INSITU_AUTHENTICATOR"):
        monkeypatch.delenv(k, raising=False)
    c, s = _configured(tmp_path)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.ConfigurableHTTPProxy.command[0].endswith("node_modules/.bin/configurable-http-proxy")
    assert c.JupyterHub.authenticator_class == "hub.auth.LocalAccountsAuthenticator"
    assert c.JupyterHub.spawner_class == "hub.sandbox.LocalSandboxSpawner"
    assert c.Authenticator.manage_groups is True
    svcs = {x["name"]: x for x in c.JupyterHub.services}
    assert set(svcs) == {"dataset-service", "tracer", "dev-chain", "insitu-hub"}
    assert svcs["dataset-service"]["command"][1:4] == ["-m", "dataset_service", "serve"]
    assert svcs["dataset-service"]["url"] == "http://127.0.0.1:8101"
    assert svcs["tracer"]["command"][1:4] == ["-m", "tracer", "serve"]
    assert svcs["dev-chain"]["command"][1:4] == ["-m", "tracer", "dev-chain"]
    assert svcs["insitu-hub"]["command"][1:3] == ["-m", "hub.reconciler"]
    # the dataset service traces under the tracer's hub prefix with its own hub token
    env = svcs["dataset-service"]["environment"]
    assert env["INSITU_TRACER_URL"] == "http://127.0.0.1:8102/services/tracer"
    assert env["INSITU_TRACER_TOKEN"] == svcs["dataset-service"]["api_token"]
    # the spawner talks to the dataset service as insitu-hub
    assert c.Spawner.dataset_service_token == svcs["insitu-hub"]["api_token"]
    assert c.Spawner.dataset_service_url == "http://127.0.0.1:8101/services/dataset-service"
    # the services' compiled files go to a cache outside the code they run from
    for svc in svcs.values():
        prefix = svc["environment"]["PYTHONPYCACHEPREFIX"]
        assert prefix and not prefix.startswith(svc["cwd"] + "/"), (svc["name"], prefix)
    # every token differs
    tokens = [x["api_token"] for x in svcs.values()] + [c.ConfigurableHTTPProxy.auth_token]
    assert len(set(tokens)) == len(tokens)


def test_kubernetes_mode_registers_external_services(tmp_path, monkeypatch):
    monkeypatch.setenv("INSITU_DATASET_SERVICE_URL", "http://dataset-service.insitu.svc:8101")
    for name in ("DATASET_SERVICE", "TRACER", "INSITU_HUB", "INSITU_ADMISSION"):  # the chart's Secret
        monkeypatch.setenv(f"INSITU_{name}_TOKEN", f"t-{name}")
    c, s = _configured(tmp_path, mode="kubernetes")
    svcs = {x["name"]: x for x in c.JupyterHub.services}
    assert set(svcs) == {"dataset-service", "tracer", "insitu-hub", "insitu-admission"}
    assert not (tmp_path / "var").exists()  # tokens come from the Secret; nothing is written
    assert "command" not in svcs["dataset-service"] and "command" not in svcs["tracer"]
    # the reconcilers run next to the hub, with the Keycloak membership pass
    assert svcs["insitu-hub"]["command"][1:3] == ["-m", "hub.reconciler"]
    assert "--keycloak-sync" in svcs["insitu-hub"]["command"]
    assert svcs["dataset-service"]["url"] == "http://dataset-service.insitu.svc:8101"
    assert c.JupyterHub.authenticator_class == "hub.auth.KeycloakAuthenticator"
    assert c.JupyterHub.spawner_class == "hub.kube.InsituKubeSpawner"
    assert "command" not in c.ConfigurableHTTPProxy  # the proxy is its own deployment


def test_roles_are_least_privilege():
    roles = {r["name"]: r for r in role_definitions()}
    assert roles["insitu-dataset-service"]["services"] == ["dataset-service"]
    assert not any(s.startswith("admin") for s in roles["insitu-dataset-service"]["scopes"])
    assert not any(s.startswith("admin") or s == "tokens" for s in roles["insitu-tracer"]["scopes"])
    # only insitu-hub may stop servers, and it may not create tokens or users
    assert "admin:servers" in roles["insitu-hub"]["scopes"]
    assert not {"admin:users", "tokens", "users"} & set(roles["insitu-hub"]["scopes"])
    # a user reaches their own servers and the two services, and creates no API token (issue 11, item 3)
    user = set(roles["user"]["scopes"])
    assert {"access:servers!user", "servers!user", "access:services!service=dataset-service",
            "access:services!service=tracer"} <= user
    assert not {"self", "tokens", "tokens!user", "users:shares!user", "access:servers"} & user
    assert roles["insitu-api-tokens"]["scopes"] == ["tokens!user"]
    assert "researchers" not in roles["insitu-api-tokens"]["groups"]


def test_per_user_and_per_service_origins():
    from hub.settings import InsituHub, origin_of

    s = InsituHub(hub_port=8123, var_dir="/nonexistent-insitu-var")
    assert s.subdomain_host == "http://localhost:8123"
    assert origin_of(s, "alice") == "http://alice.localhost:8123"
    # JupyterHub's own rule: services get a suffix no user name can produce
    assert origin_of(s, "dataset-service", "service") == "http://dataset-service--service.localhost:8123"
    assert origin_of(s, "tracer", "service") != origin_of(s, "tracer")
    assert InsituHub(mode="kubernetes").subdomain_host == ""


def test_secrets_are_private_and_reused(tmp_path):
    s = InsituHub(var_dir=str(tmp_path / "var"))
    first = ensure_secrets(s)
    store = tmp_path / "var" / "secrets" / "service-tokens.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    assert ensure_secrets(s) == first == json.loads(store.read_text())
    assert all(len(v) == 64 for v in first.values())
