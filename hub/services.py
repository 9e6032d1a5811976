"""The hub's services and roles: ``c.JupyterHub.services`` and ``c.JupyterHub.load_roles``. Pure.

Names of the pieces (``insitu.names``, docs/CONTRACTS.md §1): the services
``dataset-service``, ``tracer``, ``dev-chain``, ``insitu-hub`` (the hub's own
token, used by the spawner, the revocation reconciler and the Keycloak
membership reconciler) and ``insitu-admission`` (Kyverno's admission check).
Each gets least privilege (``role_definitions``).
"""

from __future__ import annotations

import os
from pathlib import Path

from hub.settings import InsituHub, public_url
from insitu.names import SERVICE_ADMISSION, SERVICE_CHAIN, SERVICE_DATASET, SERVICE_HUB, SERVICE_TRACER


def service_definitions(settings: InsituHub, tokens: dict[str, str]) -> list[dict]:
    """``c.JupyterHub.services`` for ``settings``.

    Managed (embedded default): JupyterHub starts each command, hands it its API
    token and OAuth client through ``JUPYTERHUB_*`` variables, and restarts
    nothing by itself (``make up`` stops everything with the hub). External
    (Kubernetes): only the name, URL, token and OAuth client are registered.
    ``insitu-hub`` is the hub's own token; in both modes it runs the
    revocation reconciler (and the Keycloak sync when enabled) next to the hub.
    """
    py = settings.python
    root = settings.root
    common_env = {
        "INSITU_ROOT": root,
        "INSITU_VAR_DIR": settings.var_dir,
        "PYTHONPATH": root,
        "PATH": f"{Path(py).parent}:{Path(root) / 'node_modules' / '.bin'}:/usr/local/bin:/usr/bin:/bin",
        # compiled files of the services go to a cache, never into the code they run from
        "PYTHONPYCACHEPREFIX": os.environ.get("PYTHONPYCACHEPREFIX")
        or os.path.join(settings.var_dir, "cache", "pycache"),
    }
    if settings.subdomain_host:
        # the services send browsers to the hub's own origin to log in (JupyterHub's
        # JUPYTERHUB_PUBLIC_HUB_URL carries the /hub/ prefix as well)
        common_env = dict(common_env, JUPYTERHUB_PUBLIC_HUB_URL=public_url(settings),
                          INSITU_PUBLIC_HUB_URL=public_url(settings))
    ds_env = dict(
        common_env,
        INSITU_LAKE_DIR=settings.path("lake"),
        INSITU_DATASETS_DIR=settings.path("datasets"),
        INSITU_DATABASE_URL="sqlite:///" + settings.path("db", "dataset-service.sqlite"),
        # the tracer's root is under its hub prefix; the service presents its own hub token
        INSITU_TRACER_URL=settings.tracer_url.rstrip("/") + "/services/" + SERVICE_TRACER,
        INSITU_TRACER_TOKEN=tokens[SERVICE_DATASET],
        INSITU_PSEUDONYM_KEY=tokens.get("pseudonym-key", ""),  # managed services only (embedded)
    )
    tracer_env = dict(
        common_env,
        TRACER_DATABASE_URL="sqlite:///" + settings.path("db", "tracer.sqlite"),
        TRACER_CHAIN_URL=settings.chain_url,
        TRACER_KEY_FILE=settings.path("chain", "tracer.key"),
        TRACER_HOST="127.0.0.1",
        TRACER_PORT=str(settings.tracer_port),
    )
    hub_env = dict(
        common_env,
        INSITU_DATASET_SERVICE_URL=settings.dataset_service_url,
        INSITU_RECONCILE_INTERVAL=str(settings.reconcile_interval),
    )
    ds = {
        "name": SERVICE_DATASET,
        "url": settings.dataset_service_url,
        "api_token": tokens[SERVICE_DATASET],
        "oauth_no_confirm": True,
        "display": True,
        "info": {"description": "Dataset catalogue, access requests and grants"},
    }
    tracer = {
        "name": SERVICE_TRACER,
        "url": settings.tracer_url,
        "api_token": tokens[SERVICE_TRACER],
        "oauth_no_confirm": True,
        "display": True,
        "info": {"description": "Audit trail anchored on the chain"},
    }
    hub_svc = {"name": SERVICE_HUB, "api_token": tokens[SERVICE_HUB]}
    admission = {"name": SERVICE_ADMISSION, "api_token": tokens[SERVICE_ADMISSION]}
    # the reconcilers run inside the hub's own process tree in both modes (like
    # the idle culler of zero-to-jupyterhub): they need only the hub API
    reconcile_cmd = [py, "-m", "hub.reconciler", "--interval", str(settings.reconcile_interval)]
    if settings.keycloak_sync:
        reconcile_cmd.append("--keycloak-sync")
        for k in ("KEYCLOAK_URL", "KEYCLOAK_REALM", "KEYCLOAK_SYNC_CLIENT_ID", "KEYCLOAK_SYNC_CLIENT_SECRET"):
            if os.environ.get(k):
                hub_env[k] = os.environ[k]
    hub_svc["command"] = reconcile_cmd
    hub_svc["environment"] = hub_env
    hub_svc["cwd"] = root
    services = [ds, tracer, hub_svc]
    if settings.mode == "kubernetes":
        services.append(admission)
    if not settings.managed_services:
        return services
    ds["command"] = [py, "-m", "dataset_service", "serve", "--host", "127.0.0.1",
                     "--port", str(settings.dataset_service_port)]
    ds["environment"] = ds_env
    ds["cwd"] = root
    tracer["command"] = [py, "-m", "tracer", "serve", "--host", "127.0.0.1", "--port", str(settings.tracer_port)]
    tracer["environment"] = tracer_env
    tracer["cwd"] = root
    if settings.run_dev_chain:
        services.append({
            "name": SERVICE_CHAIN,
            "api_token": tokens[SERVICE_CHAIN],
            "command": [py, "-m", "tracer", "dev-chain",
                        "--port", str(settings.chain_port), "--state-dir", settings.path("chain")],
            "environment": common_env,
            "cwd": root,
        })
    return services


#: A user's own scopes: JupyterHub's ``self`` less ``tokens`` (no personal API tokens; the Token
#: page refuses to create one) and less ``users:shares`` (a workspace is never shared: only its
#: owner reaches it). Reading one's own tokens stays, so they can be seen.
USER_SCOPES = ["read:users!user", "users:activity!user", "servers!user", "access:servers!user",
               "read:tokens!user"]
#: Roles whose members may create API tokens for themselves (scripts against the services'
#: APIs: data management, reviews, audits). Researchers are not among them.
TOKEN_GROUPS = ["data-managers", "dac", "auditors", "admins"]


def role_definitions() -> list[dict]:
    """``c.JupyterHub.load_roles``: least privilege for each service."""
    return [
        # every user may log in to the platform's web pages (they decide the rest); a user
        # manages and reaches their own servers, but creates no API tokens (issue 11, item 3):
        # ``self`` without ``tokens``
        {"name": "user", "scopes": USER_SCOPES + [f"access:services!service={SERVICE_DATASET}",
                                                  f"access:services!service={SERVICE_TRACER}"]},
        {"name": "insitu-api-tokens", "description": "Create API tokens for oneself (not researchers)",
         "scopes": ["tokens!user"], "groups": list(TOKEN_GROUPS)},
        {
            "name": "insitu-dataset-service",
            "description": "Read who is who: users and their groups",
            "scopes": ["read:users", "list:users", "read:groups", "list:groups",
                       f"access:services!service={SERVICE_TRACER}"],
            "services": [SERVICE_DATASET],
        },
        {
            "name": "insitu-tracer",
            "description": "Identify callers",
            "scopes": ["read:users:name", "read:groups:name"],
            "services": [SERVICE_TRACER],
        },
        {
            "name": "insitu-admission",
            "description": "Kyverno's admission check: read a session at the dataset service, nothing else",
            "scopes": [f"access:services!service={SERVICE_DATASET}"],
            "services": [SERVICE_ADMISSION],
        },
        {
            "name": "insitu-hub",
            "description": "Spawner and reconcilers: stop servers, keep group membership in step",
            "scopes": ["read:users", "list:users", "admin:servers", "read:servers", "read:groups",
                       "list:groups", "groups", "access:services"],
            "services": [SERVICE_HUB],
        },
    ]
