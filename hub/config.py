"""``configure_hub(c, settings)``: the insitu hub as JupyterHub configuration.

The settings are ``hub/settings.py``'s ``InsituHub`` (options from ``INSITU_*``),
the services and roles ``hub/services.py``, the tokens ``hub/service_tokens.py``.
Nothing is started; in the embedded default the state folders it names are made
(``db/``, ``run/``) and the secrets written once (``ensure_secrets``).
Used by ``hub/jupyterhub_config.py`` and by the Helm chart's ``extraConfig``.
"""

from __future__ import annotations

from pathlib import Path

from hub.service_tokens import ensure_secrets
from hub.services import role_definitions, service_definitions
from hub.settings import InsituHub
from insitu.names import SERVICE_ADMISSION, SERVICE_DATASET, SERVICE_HUB


def configure_hub(c, settings: InsituHub, tokens: dict[str, str] | None = None) -> None:
    """Fill the JupyterHub config object ``c`` from ``settings``."""
    tokens = tokens or ensure_secrets(settings)
    db_dir = Path(settings.path("db"))
    proxy_api_port = settings.proxy_api_port or settings.hub_port + 1
    if settings.mode == "embedded":
        # on Kubernetes the z2jh chart binds the hub, its database and the proxy
        c.JupyterHub.bind_url = f"http://{settings.hub_ip}:{settings.hub_port}"
    if settings.subdomain_host:
        # per-user and per-service origins (issue 11, item 1)
        c.JupyterHub.subdomain_host = settings.subdomain_host
    if settings.mode == "embedded":
        if settings.hub_api_port:
            c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{settings.hub_api_port}"
        db_dir.mkdir(parents=True, exist_ok=True)
        c.JupyterHub.db_url = "sqlite:///" + str(db_dir / "jupyterhub.sqlite")
        c.JupyterHub.cookie_secret_file = str(Path(settings.secrets_dir) / "jupyterhub_cookie_secret")
        c.JupyterHub.pid_file = settings.path("run", "jupyterhub.pid")
        Path(settings.path("run")).mkdir(parents=True, exist_ok=True)
        c.ConfigurableHTTPProxy.command = settings.proxy_command
        c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
        c.ConfigurableHTTPProxy.pid_file = settings.path("run", "proxy.pid")
        c.ConfigurableHTTPProxy.should_start = True
        # the proxy's token is the hub's: generated once with the other secrets
        c.ConfigurableHTTPProxy.auth_token = tokens["proxy"]
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.services = service_definitions(settings, tokens)
    # the admission service (Kyverno's token) exists on Kubernetes only
    c.JupyterHub.load_roles = [r for r in role_definitions()
                               if settings.mode == "kubernetes" or SERVICE_ADMISSION not in r.get("services", [])]
    c.JupyterHub.spawner_class = settings.spawner_class
    # the spawners' dataset session (hub.spawner_base.DatasetSessionMixin)
    c.Spawner.dataset_service_url = settings.dataset_service_url.rstrip("/") + "/services/" + SERVICE_DATASET
    c.Spawner.dataset_service_token = tokens[SERVICE_HUB]
    if settings.mode == "embedded":
        c.Spawner.lake_dir = settings.path("lake")
        c.Spawner.datasets_dir = settings.path("datasets")
        c.Spawner.home_root = settings.path("homes")
    c.JupyterHub.default_url = "/hub/home"
    # the platform's front door: hub pages in the platform's look, home page per role (hub/frontdoor.py)
    from hub import frontdoor

    c.Spawner.stop_notices_path = settings.path("run", "stop-notices.json")
    frontdoor.configure(c, settings.path("run", "stop-notices.json"), c.Spawner.dataset_service_url)
    c.Authenticator.manage_groups = True
    c.Authenticator.auth_refresh_age = 60
    c.Authenticator.refresh_pre_spawn = True
    if settings.authenticator == "local":
        c.JupyterHub.authenticator_class = "hub.auth.LocalAccountsAuthenticator"
        c.LocalAccountsAuthenticator.users_file = settings.users_file
    else:
        c.JupyterHub.authenticator_class = "hub.auth.KeycloakAuthenticator"
