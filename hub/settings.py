"""insitu settings for JupyterHub, as a traitlets ``Configurable``.

``InsituHub`` holds the few choices that shape the whole hub (embedded default
or Kubernetes, where things live, which authenticator); ``hub/config.py``'s
``configure_hub(c, settings)`` turns them into JupyterHub configuration, with the
services and roles of ``hub/services.py`` and the tokens of ``hub/service_tokens.py``.

Every option can be set in a JupyterHub config file (``c.InsituHub.mode =
"kubernetes"``) or, for the embedded default and tests, from an environment
variable ``INSITU_<NAME>`` (upper case), which is read as the default. Reading
the settings writes nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from traitlets import Bool, Enum, Integer, Unicode, default
from traitlets.config import Configurable

REPO_ROOT = Path(__file__).resolve().parent.parent


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
