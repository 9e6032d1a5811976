"""insitu settings for JupyterHub, as a traitlets ``Configurable``.

``InsituHub`` holds the few choices that shape the whole hub (embedded default
or Kubernetes, where things live, which authenticator) and
``configure_hub(c, settings)`` turns them into JupyterHub configuration. Both are
pure: no process is started and nothing is written except the secrets folder
(``ensure_secrets``), so the result can be checked in tests.

Every option can be set in a JupyterHub config file (``c.InsituHub.mode =
"kubernetes"``) or, for the embedded default and tests, from an environment
variable ``INSITU_<NAME>`` (upper case), which is read as the default.

Names of the pieces (``insitu.names``, docs/CONTRACTS.md §1): the services
``dataset-service``, ``tracer``, ``dev-chain``, ``insitu-hub`` (the hub's own
token, used by the spawner, the revocation reconciler and the Keycloak
membership reconciler) and ``insitu-admission`` (Kyverno's admission check).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from traitlets import Bool, Enum, Integer, Unicode, default
from traitlets.config import Configurable

from insitu.names import (  # noqa: F401  (PROJECT_PREFIX and the service names are also public here)
    PROJECT_PREFIX,
    ROLES,
    SERVICE_ADMISSION,
    SERVICE_CHAIN,
    SERVICE_DATASET,
    SERVICE_HUB,
    SERVICE_TRACER,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Role groups (``admins`` pass every role check), project groups ``project-<code>`` and the services' names:
# spelled once, in the core (insitu/names.py; docs/CONTRACTS.md §1).
ROLE_GROUPS = ROLES


def _env(name: str, fallback):
    """Default of an option: ``INSITU_<NAME>`` when set, else ``fallback``."""
    value = os.environ.get("INSITU_" + name.upper())
    if value is None:
        return fallback
    if isinstance(fallback, bool):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(fallback, int):
        return int(value)
    return value


class InsituHub(Configurable):
    """How the insitu hub is put together."""

    mode = Enum(
        ["embedded", "kubernetes"],
        config=True,
        help="""'embedded': one machine; the dataset service, the tracer and the
        dev chain run as JupyterHub managed services, workspaces run in the local
        sandbox spawner, logins are local accounts. 'kubernetes': the services are
        external (separate deployments, reached at their URLs), workspaces are
        pods (hub.kube.InsituKubeSpawner), logins go through Keycloak.""",
    )

    @default("mode")
    def _mode_default(self):
        return _env("mode", "embedded")

    root = Unicode(
        config=True,
        help="Repository root: where node_modules/.bin and the package live.",
    )

    @default("root")
    def _root_default(self):
        return _env("root", str(REPO_ROOT))

    var_dir = Unicode(
        config=True,
        help="""State folder of the embedded default (docs/CONTRACTS.md §6):
        lake/, datasets/, db/, chain/, homes/, secrets/, users.yaml. Outside the
        checkout (default /var/lib/insitu): nothing the platform runs writes into
        its own source tree.""",
    )

    @default("var_dir")
    def _var_dir_default(self):
        return _env("var_dir", "/var/lib/insitu")

    hub_ip = Unicode(config=True, help="Address the proxy listens on (loopback in the embedded default).")

    @default("hub_ip")
    def _hub_ip_default(self):
        return _env("hub_ip", "127.0.0.1")

    hub_port = Integer(config=True, help="Public port of the proxy (8000 in the embedded default).")

    @default("hub_port")
    def _hub_port_default(self):
        return _env("hub_port", 8000)

    hub_api_port = Integer(config=True, help="Port of the hub's own API (0: JupyterHub's default 8081).")

    @default("hub_api_port")
    def _hub_api_port_default(self):
        return _env("hub_api_port", 0)

    proxy_api_port = Integer(config=True, help="Port of the proxy's REST API (0: proxy port + 1).")

    @default("proxy_api_port")
    def _proxy_api_port_default(self):
        return _env("proxy_api_port", 0)

    dataset_service_port = Integer(config=True, help="Loopback port of the managed dataset service.")

    @default("dataset_service_port")
    def _ds_port_default(self):
        return _env("dataset_service_port", 8101)

    tracer_port = Integer(config=True, help="Loopback port of the managed tracer.")

    @default("tracer_port")
    def _tracer_port_default(self):
        return _env("tracer_port", 8102)

    chain_port = Integer(config=True, help="Loopback port of the dev chain's JSON-RPC.")

    @default("chain_port")
    def _chain_port_default(self):
        return _env("chain_port", 8545)

    subdomain_host = Unicode(
        config=True,
        help="""Public origin of the hub, with per-user and per-service origins below it
        (JupyterHub's ``subdomain_host``): user ``alice`` at ``alice.<host>``, the
        dataset service at ``dataset-service--service.<host>``, so that nothing a
        workspace serves shares an origin with the hub, a service or another user.
        Embedded default: ``http://localhost:<hub_port>`` (browsers resolve
        ``*.localhost`` to loopback themselves; glibc does with ``myhostname`` in
        /etc/nsswitch.conf). Empty: one origin for everything (not recommended).
        On Kubernetes: the public https origin, with a wildcard DNS name and
        certificate.""",
    )

    @default("subdomain_host")
    def _subdomain_host_default(self):
        return _env("subdomain_host", f"http://localhost:{self.hub_port}" if self.mode == "embedded" else "")

    dataset_service_url = Unicode(
        config=True,
        help="""URL of the dataset service. Embedded: the managed service at
        http://127.0.0.1:<dataset_service_port>; Kubernetes: the in-cluster URL
        of its deployment.""",
    )

    @default("dataset_service_url")
    def _ds_url_default(self):
        return _env("dataset_service_url", f"http://127.0.0.1:{self.dataset_service_port}")

    tracer_url = Unicode(config=True, help="URL of the tracer (as for dataset_service_url).")

    @default("tracer_url")
    def _tracer_url_default(self):
        return _env("tracer_url", f"http://127.0.0.1:{self.tracer_port}")

    chain_url = Unicode(config=True, help="JSON-RPC URL of the chain (dev chain here, Besu on Kubernetes).")

    @default("chain_url")
    def _chain_url_default(self):
        return _env("chain_url", f"http://127.0.0.1:{self.chain_port}")

    managed_services = Bool(
        config=True,
        help="""Run the dataset service, the tracer and the dev chain as JupyterHub
        managed services (default: true in the embedded mode, false on
        Kubernetes, where they are registered as external services).""",
    )

    @default("managed_services")
    def _managed_default(self):
        return _env("managed_services", self.mode == "embedded")

    run_dev_chain = Bool(
        config=True,
        help="Run the local dev chain (managed mode only); off when chain_url points at a real network.",
    )

    @default("run_dev_chain")
    def _run_chain_default(self):
        return _env("run_dev_chain", True)

    authenticator = Enum(
        ["local", "keycloak"],
        config=True,
        help="""'local': hub.auth.LocalAccountsAuthenticator (hashed passwords and
        groups from users_file). 'keycloak': hub.auth.KeycloakAuthenticator
        (OpenID Connect, groups claim → hub groups).""",
    )

    @default("authenticator")
    def _auth_default(self):
        return _env("authenticator", "local" if self.mode == "embedded" else "keycloak")

    users_file = Unicode(config=True, help="YAML file of local accounts (local authenticator).")

    @default("users_file")
    def _users_file_default(self):
        return _env("users_file", str(Path(self.var_dir) / "users.yaml"))

    spawner_class = Unicode(
        config=True,
        help="""Spawner class (import string). Embedded: hub.sandbox.LocalSandboxSpawner;
        Kubernetes: hub.kube.InsituKubeSpawner.""",
    )

    @default("spawner_class")
    def _spawner_default(self):
        fallback = "hub.sandbox.LocalSandboxSpawner" if self.mode == "embedded" else "hub.kube.InsituKubeSpawner"
        return _env("spawner_class", fallback)

    reconcile_interval = Integer(
        config=True,
        help="Seconds between two passes of the revocation reconciler (a server is stopped within a minute).",
    )

    @default("reconcile_interval")
    def _reconcile_default(self):
        return _env("reconcile_interval", 20)

    keycloak_sync = Bool(
        config=True,
        help="""Run the Keycloak membership reconciler (hub.keycloak_sync) next to the
        revocation reconciler; default on with the keycloak authenticator.""",
    )

    @default("keycloak_sync")
    def _kc_sync_default(self):
        return _env("keycloak_sync", self.authenticator == "keycloak")

    python = Unicode(config=True, help="Python interpreter that runs the managed services.")

    @default("python")
    def _python_default(self):
        return _env("python", sys.executable)

    # --- derived paths ---------------------------------------------------
    def path(self, *parts: str) -> str:
        return str(Path(self.var_dir).joinpath(*parts))

    @property
    def secrets_dir(self) -> str:
        return self.path("secrets")

    @property
    def proxy_command(self) -> list[str]:
        return [str(Path(self.root) / "node_modules" / ".bin" / "configurable-http-proxy")]


def public_url(settings: InsituHub) -> str:
    """The hub's public origin (what a browser opens)."""
    return (settings.subdomain_host or f"http://{settings.hub_ip}:{settings.hub_port}").rstrip("/")


def origin_of(settings: InsituHub, name: str, kind: str = "user") -> str:
    """The public origin of user ``name`` (``kind="user"``) or service ``name``
    (``kind="service"``): JupyterHub's own subdomain rule; the hub's origin
    without ``subdomain_host``."""
    from urllib.parse import urlparse

    from jupyterhub.utils import subdomain_hook_idna

    if not settings.subdomain_host:
        return public_url(settings)
    u = urlparse(settings.subdomain_host)
    host = subdomain_hook_idna(name, u.hostname, kind)
    return f"{u.scheme}://{host}" + (f":{u.port}" if u.port else "")


def ensure_secrets(settings: InsituHub) -> dict[str, str]:
    """Create (once) and return the service API tokens of the embedded default.

    They are kept in ``<var>/secrets/service-tokens.json`` (mode 0600) so that a
    second start reuses them; ``proxy`` is the token between hub and proxy,
    ``pseudonym-key`` the key of the user pseudonyms in traces. On Kubernetes the tokens come from the chart's
    secrets through ``INSITU_<SERVICE>_TOKEN`` variables instead.
    """
    names = (SERVICE_DATASET, SERVICE_TRACER, SERVICE_CHAIN, SERVICE_HUB, SERVICE_ADMISSION, "proxy", "pseudonym-key")
    from_env = {n: os.environ.get(token_env(n)) for n in names}
    if all(from_env.values()):
        return dict(from_env)
    if settings.mode == "kubernetes":
        # the chart's Secret is the only source; nothing is generated or written
        needed = (SERVICE_DATASET, SERVICE_TRACER, SERVICE_HUB, SERVICE_ADMISSION)
        missing = [token_env(n) for n in needed if not from_env[n]]
        if missing:
            raise ValueError(f"kubernetes mode: set {', '.join(missing)} (from the chart's service-token Secret)")
        return {n: v for n, v in from_env.items() if v}
    folder = Path(settings.secrets_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    store = folder / "service-tokens.json"
    tokens: dict[str, str] = {}
    if store.exists():
        tokens = json.loads(store.read_text())
    changed = False
    for name in names:
        if from_env[name]:
            tokens[name] = from_env[name]
        elif not tokens.get(name):
            tokens[name] = secrets.token_hex(32)
            changed = True
    if changed or not store.exists():
        tmp = store.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(tokens, fh, indent=1)
        os.replace(tmp, store)
    return tokens


def token_env(name: str) -> str:
    """The variable that carries a service's token: ``INSITU_<NAME>_TOKEN``."""
    return f"INSITU_{name.upper().replace('-', '_')}_TOKEN"


def hub_service_token(settings: InsituHub | None = None) -> str:
    """The ``insitu-hub`` token (for the spawner, which runs inside the hub)."""
    env = os.environ.get("INSITU_INSITU_HUB_TOKEN")
    if env:
        return env
    return ensure_secrets(settings or InsituHub())[SERVICE_HUB]


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
