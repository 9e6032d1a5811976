"""``python -m hub up --keycloak``: the embedded platform with a real Keycloak.

Instead of the local accounts file, the hub logs users in through Keycloak
(``hub.auth.KeycloakAuthenticator``, authorization code + PKCE) and the
membership reconciler reads Keycloak's groups. Keycloak is the cached
distribution of ``scripts/setup.d/40-keycloak.sh`` in dev mode on
``127.0.0.1`` (``INSITU_KEYCLOAK_PORT``, default 8180), with an in-memory
database: every run imports the chart's realm (``helm/insitu/files/realm.json``)
again and creates the demo users (same names, groups and passwords as the
local accounts, ``<var>/secrets/demo-logins.json``) and their groups.

:func:`start` sets the environment the hub and its reconciler read
(``INSITU_AUTHENTICATOR``, ``KEYCLOAK_*``, ``OAUTH_*``); the caller starts the
hub afterwards and calls ``stop()`` on the returned server at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

from hub import keycloak_dev

DEFAULT_PORT = 8180


def hub_environment(kc_url: str, callback_url: str, hub_secret: str, sync_secret: str) -> dict[str, str]:
    """The variables that point the hub and the reconciler at Keycloak (pure)."""
    return {
        "INSITU_AUTHENTICATOR": "keycloak",
        "KEYCLOAK_URL": kc_url,
        "KEYCLOAK_REALM": keycloak_dev.REALM,
        "OAUTH_CLIENT_ID": keycloak_dev.HUB_CLIENT,
        "OAUTH_CLIENT_SECRET": hub_secret,
        "OAUTH_CALLBACK_URL": callback_url,
        "KEYCLOAK_SYNC_CLIENT_ID": keycloak_dev.SYNC_CLIENT,
        "KEYCLOAK_SYNC_CLIENT_SECRET": sync_secret,
    }


def provision(kc: keycloak_dev.DevKeycloak, public_url: str,
              accounts: dict[str, tuple[str, list[str]]], *, import_realm: bool = True) -> dict[str, str]:
    """Import the realm (unless it is there already), allow the hub's callback, read the secret of
    the reconciler's client (declared in the realm file), add the accounts ``{user: (password, groups)}``; returns
    :func:`hub_environment`."""
    if import_realm:
        keycloak_dev.import_realm(kc)
    admin = kc.admin()
    callback = public_url.rstrip("/") + "/hub/oauth_callback"
    hub_secret = keycloak_dev.configure_hub_client(admin, callback)
    sync_secret = keycloak_dev.sync_client_secret(admin)  # the realm file's insitu-sync client
    for name, (password, groups) in accounts.items():
        keycloak_dev.ensure_user(admin, name, password, groups)
    return hub_environment(kc.url, callback, hub_secret, sync_secret)


def start(var_dir: str, public_url: str, accounts: dict[str, tuple[str, list[str]]],
          say=print) -> keycloak_dev.DevKeycloak:
    """Start Keycloak, provision it, export the hub's environment into ``os.environ``."""
    port = int(os.environ.get("INSITU_KEYCLOAK_PORT") or DEFAULT_PORT)
    kc = keycloak_dev.DevKeycloak(Path(var_dir) / "keycloak", port=port)
    say(f"starting Keycloak {keycloak_dev.KEYCLOAK_VERSION} on {kc.url} (log: {kc.log_path})")
    kc.start()
    try:
        env = provision(kc, public_url, accounts)
    except Exception:
        kc.stop()
        raise
    os.environ.update(env)
    say(f"Keycloak ready in {kc.start_seconds:.0f} s: realm {keycloak_dev.REALM}, "
        f"admin console {kc.url}/admin/ (user {kc.admin_user}, password {kc.admin_password})")
    return kc
