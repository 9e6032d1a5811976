"""``python -m hub up`` (what ``make up`` runs): the whole platform on this machine.

1. State in the state folder ``<var>`` (``InsituHub.var_dir``: ``--var``,
   ``INSITU_VAR_DIR``, default ``/var/lib/insitu``, outside the checkout;
   docs/CONTRACTS.md §6): secrets (service tokens, cookie secret; mode 0600),
   the local accounts file with one demo user per role (random passwords, kept
   in ``<var>/secrets/demo-logins.json`` so that a second run prints the same),
   the dev chain key, and a synthetic DICOM demo lake (``python -m
   dataset_service demo-lake``) when ``<var>/lake`` does not exist.
2. JupyterHub with configurable-http-proxy, which starts the dataset service,
   the tracer, the dev chain and the reconciler as managed services.
3. The demo content, once, through the public APIs as the demo users (each
   logs in through the hub's login form and gets a short-lived token, deleted
   afterwards): the data manager indexes the lake, creates two datasets and
   releases them; the researcher asks access to the first for the demo project;
   two DAC members approve, which grants it. ``<var>/demo.json`` records the
   result; a later run reuses it.
4. Prints the URL and the demo logins, then waits. Ctrl-C (or SIGTERM) stops
   the hub, which stops its services, the proxy and the workspaces.

Ports and places come from :class:`hub.settings.InsituHub` (``INSITU_*``
variables); ``--port`` and ``--var`` are shortcuts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import httpx

from hub.auth import write_users_file
from hub.service_tokens import ensure_secrets
from hub.settings import InsituHub, origin_of
from hub.settings import public_url as config_public_url
from insitu.waiting import exit_of, wait_for_answer

DEMO_PROJECT = "lung"
# user → (groups, what they do in the demo)
DEMO_USERS: dict[str, tuple[list[str], str]] = {
    "alice": (["researchers", f"project-{DEMO_PROJECT}"], "researcher, project lung (granted dataset A)"),
    "bob": (["researchers", "project-brain"], "researcher, project brain (no grant)"),
    "dora": (["data-managers"], "data manager"),
    "dac1": (["dac"], "data access committee"),
    "dac2": (["dac"], "data access committee"),
    "audrey": (["auditors"], "auditor"),
    "admin": (["admins"], "administrator"),
}


def say(msg: str) -> None:
    print(f"\033[1m[insitu]\033[0m {msg}", flush=True)


# --- 1. state ---------------------------------------------------------------
def demo_logins(settings: InsituHub) -> dict[str, str]:
    """Demo user → password; created once (mode 0600) with the users file."""
    store = Path(settings.secrets_dir) / "demo-logins.json"
    users_file = Path(settings.users_file)
    if store.exists() and users_file.exists():
        return json.loads(store.read_text())
    logins = {u: secrets.token_urlsafe(9) for u in DEMO_USERS}
    store.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(logins, fh, indent=1)
    write_users_file(users_file, {u: (logins[u], DEMO_USERS[u][0]) for u in DEMO_USERS})
    return logins


def prepare(settings: InsituHub, *, lake_subjects: int = 12) -> dict[str, str]:
    var = Path(settings.var_dir)
    for sub in ("db", "chain", "homes", "datasets", "log", "run"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    ensure_secrets(settings)
    logins = demo_logins(settings)
    # the tracer's own command writes its dev key: the hub imports nothing of the tracer
    subprocess.run([settings.python, "-m", "tracer", "dev-key", str(var / "chain" / "tracer.key")], check=True,
                   cwd=settings.root)
    lake = var / "lake"
    if not lake.exists():
        say(f"generating a demo lake in {lake} ({lake_subjects} subjects)")
        tmp = var / "lake.tmp"
        subprocess.run([settings.python, "-m", "dataset_service", "demo-lake", str(tmp),
                        "--subjects", str(lake_subjects)], check=True, cwd=settings.root)
        os.replace(tmp, lake)
    else:
        say(f"reusing the lake in {lake}")
    return logins


# --- 2. the hub ---------------------------------------------------------------
def hub_env(settings: InsituHub) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "INSITU_MODE": settings.mode,
        "INSITU_ROOT": settings.root,
        "INSITU_VAR_DIR": settings.var_dir,
        "INSITU_HUB_PORT": str(settings.hub_port),
        "INSITU_HUB_API_PORT": str(settings.hub_api_port),
        "INSITU_PROXY_API_PORT": str(settings.proxy_api_port),
        "INSITU_DATASET_SERVICE_PORT": str(settings.dataset_service_port),
        "INSITU_TRACER_PORT": str(settings.tracer_port),
        "INSITU_CHAIN_PORT": str(settings.chain_port),
        "INSITU_USERS_FILE": settings.users_file,
        "PATH": f"{Path(settings.python).parent}:{Path(settings.root) / 'node_modules' / '.bin'}:"
                + env.get("PATH", "/usr/bin:/bin"),
    })
    return env


def start_hub(settings: InsituHub) -> subprocess.Popen:
    log_path = Path(settings.path("log", "jupyterhub.log"))
    log = open(log_path, "ab")
    config = Path(settings.root) / "hub" / "jupyterhub_config.py"
    return subprocess.Popen(
        [settings.python, "-m", "jupyterhub", "-f", str(config)],
        cwd=settings.path("run"), env=hub_env(settings), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def public_url(settings: InsituHub) -> str:
    """The hub's public origin: ``subdomain_host`` (per-user and per-service origins) when set."""
    return config_public_url(settings)


def service_url(settings: InsituHub, name: str) -> str:
    """A service's public root, on its own origin (``hub.settings.origin_of``)."""
    return origin_of(settings, name, "service") + f"/services/{name}"


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180, settings: InsituHub | None = None) -> None:
    """Until the hub, the dataset service and the tracer answer through the proxy."""
    # public routes only (the tracer's /health answers platform services only)
    settings = settings or InsituHub()
    checks = [url + "/hub/api/", service_url(settings, "dataset-service") + "/api/public/datasets",
              service_url(settings, "tracer") + "/openapi.json"]
    deadline = time.monotonic() + timeout
    for path in checks:
        if not wait_for_answer(lambda: httpx.get(path, timeout=5), deadline=deadline, interval=0.5,
                               exited=exit_of(proc, "jupyterhub")):
            raise RuntimeError(f"{path} did not answer within {timeout:.0f} s")


# --- 3. the demo content ------------------------------------------------------
class DemoUser:
    """A demo user logged in through the hub's login form, with a short-lived API token."""

    def __init__(self, url: str, name: str, password: str, *, api_url: str | None = None,
                 issuer: "DemoUser | None" = None):
        """``url``: the hub's origin; ``api_url``: the dataset service's root (its own origin);
        ``issuer``: the session that creates the token (researchers create no API tokens
        themselves: an administrator's session makes theirs)."""
        self.url, self.name = url, name
        if os.environ.get("INSITU_AUTHENTICATOR") == "keycloak":  # python -m hub up --keycloak
            from hub.keycloak_dev import browser_client, login

            self.web = browser_client(base_url=url)
            _, r = login(self.web, url, name, password)
        else:
            self.web = httpx.Client(base_url=url, timeout=60, follow_redirects=False,
                                event_hooks={"response": [self._keep_session_cookie]})
            r = self.web.get("/hub/login")
            r.raise_for_status()
            m = re.search(r'name="_xsrf"\s+value="([^"]+)"', r.text)
            self.xsrf = m.group(1) if m else self.web.cookies.get("_xsrf", "")
            r = self.web.post("/hub/login", data={"username": name, "password": password, "_xsrf": self.xsrf})
        if r.status_code != 302:
            raise RuntimeError(f"demo login of {name} failed: HTTP {r.status_code}")
        # the XSRF token is bound to the new login session: take it from a page of that session
        page = self.web.get("/hub/home")
        m = re.search(r'xsrf_token:\s*"([^"]+)"', page.text)
        if not m:
            raise RuntimeError(f"demo login of {name}: no XSRF token on /hub/home (HTTP {page.status_code})")
        self.xsrf = m.group(1)
        self.issuer = issuer or self
        r = self.issuer.web.post(f"/hub/api/users/{name}/tokens", headers={"X-XSRFToken": self.issuer.xsrf},
                                 json={"note": "make up: demo set-up", "expires_in": 900})
        if r.status_code != 201:
            raise RuntimeError(f"token for {name}: HTTP {r.status_code} {r.text[:200]}")
        self.token, self.token_id = r.json()["token"], r.json()["id"]
        self.api = httpx.Client(base_url=api_url or url + "/services/dataset-service", timeout=60,
                                headers={"Authorization": f"token {self.token}"})

    def _keep_session_cookie(self, response: httpx.Response) -> None:
        """With ``subdomain_host`` the hub sets ``jupyterhub-session-id`` for the whole domain
        (``Domain=localhost``); Python's cookie jar files a dotless host under ``<host>.local`` and
        would never send that cookie back to the hub (a new session, and a new XSRF token, on
        every request). Keep it as the hub host's own cookie too, as a browser does."""
        from urllib.parse import urlparse

        host = urlparse(self.url).hostname or ""
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name.strip() == "jupyterhub-session-id":
                value = rest.split(";", 1)[0]
                self.web.cookies.set(name.strip(), value, domain=host if "." in host else host + ".local", path="/")

    def call(self, method: str, path: str, ok=(200, 201, 202), **kw) -> dict | list:
        r = self.api.request(method, path, **kw)
        if r.status_code not in ok:
            raise RuntimeError(f"{self.name}: {method} {path}: HTTP {r.status_code} {r.text[:300]}")
        return r.json() if r.content else {}

    def close(self) -> None:
        self.issuer.web.delete(f"/hub/api/users/{self.name}/tokens/{self.token_id}",
                               headers={"X-XSRFToken": self.issuer.xsrf})
        self.api.close()
        self.web.close()


def _poll(fn, done, timeout: float = 300, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not finish within {timeout:.0f} s: {value}")
        time.sleep(0.5)


def bootstrap_demo(settings: InsituHub, url: str, logins: dict[str, str]) -> dict:
    marker = Path(settings.var_dir) / "demo.json"
    if marker.exists():
        demo = json.loads(marker.read_text())
        say(f"reusing the demo content ({', '.join(demo['datasets'])})")
        return demo
    users = {}
    try:
        api = service_url(settings, "dataset-service")
        users["admin"] = DemoUser(url, "admin", logins["admin"], api_url=api)
        for name in ("dora", "alice", "dac1", "dac2"):
            users[name] = DemoUser(url, name, logins[name], api_url=api, issuer=users["admin"])
        dora, alice = users["dora"], users["alice"]
        say("indexing the lake (as dora, data manager)")
        run = dora.call("POST", "/api/index-runs", json={})
        run = _poll(lambda: dora.call("GET", f"/api/index-runs/{run['id']}"),
                    lambda r: r.get("finished_at"), what="indexing")
        if (run.get("stats") or {}).get("error"):
            raise RuntimeError(f"indexing failed: {run['stats']['error']}")
        studies = dora.call("GET", "/api/catalogue/studies", params={"limit": 500})["items"]
        ids = sorted(s["id"] for s in studies)
        if len(ids) < 2:
            raise RuntimeError("the lake holds fewer than two studies")
        half = len(ids) // 2
        datasets = []
        for label, chosen in (("A", ids[:half]), ("B", ids[half:])):
            ds = dora.call("POST", "/api/datasets", json={
                "name": f"Demo cohort {label}", "description": f"Synthetic demo studies, cohort {label}",
                "license": "CC-BY-4.0", "tags": ["demo"], "contact": "dora", "study_ids": chosen})
            say(f"building dataset {ds['id']} (cohort {label}, {len(chosen)} studies)")
            _poll(lambda: dora.call("GET", f"/api/datasets/{ds['id']}/build"),
                  lambda b: b["state"] != "building" or b.get("error"), what=f"dataset {ds['id']}")
            dora.call("POST", f"/api/datasets/{ds['id']}/state", json={"state": "released", "reason": "demo"})
            datasets.append(ds["id"])
        say(f"alice asks access to {datasets[0]} for project {DEMO_PROJECT}; dac1 and dac2 approve")
        req = alice.call("POST", "/api/access-requests", json={
            "dataset_id": datasets[0], "project": DEMO_PROJECT, "purpose": "Demo analysis of cohort A",
            "intended_use": "notebook examples", "duration_days": 365})
        for dac in ("dac1", "dac2"):
            req = users[dac].call("POST", f"/api/access-requests/{req['id']}/votes",
                                  json={"decision": "approve", "reason": "demo grant"})
        if not req.get("grant_id"):
            raise RuntimeError(f"the access request was not granted: {req.get('state')}")
        demo = {"datasets": datasets, "grant_id": req["grant_id"], "project": DEMO_PROJECT,
                "granted_dataset": datasets[0]}
        marker.write_text(json.dumps(demo, indent=1) + "\n")
        return demo
    finally:
        for u in reversed(list(users.values())):  # the issuer (admin) last
            try:
                u.close()
            except httpx.HTTPError:
                pass


# --- 4. run -------------------------------------------------------------------
def banner(url: str, logins: dict[str, str], demo: dict | None, settings: InsituHub) -> str:
    lines = ["", f"  insitu is running at {url}/", "", "  demo logins (user / password / role):"]
    for name, (_, what) in DEMO_USERS.items():
        lines.append(f"    {name:<7} {logins[name]:<14} {what}")
    if demo:
        lines += ["", f"  datasets {', '.join(demo['datasets'])}; project {demo['project']} holds a grant "
                      f"for {demo['granted_dataset']}"]
    lines += [f"  logs: {settings.path('log')}/   state: {settings.var_dir}/", "  Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def stop_hub(proc: subprocess.Popen, timeout: float = 45) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # the hub stops its managed services, the proxy, the servers
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def up(settings: InsituHub, *, demo: bool = True, lake_subjects: int = 12, keycloak: bool = False) -> int:
    stopping = {"flag": False}

    def on_signal(signum, _frame):
        stopping["flag"] = True
        raise KeyboardInterrupt

    # SIGINT explicitly too: a shell starting this in the background ignores it by default
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    proc = kc = None
    try:
        logins = prepare(settings, lake_subjects=lake_subjects)
        if keycloak:  # the demo users and groups in a real Keycloak instead of the users file
            from hub import up_keycloak

            kc = up_keycloak.start(settings.var_dir, public_url(settings),
                                   {u: (logins[u], DEMO_USERS[u][0]) for u in DEMO_USERS}, say=say)
        say(f"starting JupyterHub on {public_url(settings)} (log: {settings.path('log', 'jupyterhub.log')})")
        proc = start_hub(settings)
        url = public_url(settings)
        wait_ready(url, proc, settings=settings)
        content = bootstrap_demo(settings, url, logins) if demo else None
        print(banner(url, logins, content, settings), flush=True)
        (Path(settings.path("run")) / "up.ready").write_text(url + "\n")
        while proc.poll() is None:
            time.sleep(0.5)
        say(f"jupyterhub exited with status {proc.returncode}")
        return proc.returncode or 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except Exception as e:  # noqa: BLE001 - one line for the operator, details in the log
        say(f"error: {e}")
        return 1
    finally:
        try:
            (Path(settings.path("run")) / "up.ready").unlink(missing_ok=True)
        except OSError:
            pass
        if proc is not None:
            stop_hub(proc)
        if kc is not None:
            kc.stop()
        if proc is not None or kc is not None:
            say("stopped")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hub up", description="run insitu on this machine")
    p.add_argument("--port", type=int, help="public port (default 8000, INSITU_HUB_PORT)")
    p.add_argument("--var", help="state folder (default /var/lib/insitu, INSITU_VAR_DIR)")
    p.add_argument("--no-demo", action="store_true", help="do not create the demo datasets and grant")
    p.add_argument("--lake-subjects", type=int, default=12, help="subjects of a newly generated demo lake")
    p.add_argument("--keycloak", action="store_true",
                   help="log in through a real Keycloak (dev mode on 127.0.0.1:8180, INSITU_KEYCLOAK_PORT) "
                        "with the chart's realm and the demo users, instead of local accounts")
    args = p.parse_args(argv)
    if args.keycloak:
        os.environ["INSITU_AUTHENTICATOR"] = "keycloak"
    if args.port:
        os.environ["INSITU_HUB_PORT"] = str(args.port)
    if args.var:
        os.environ["INSITU_VAR_DIR"] = str(Path(args.var).resolve())
    return up(InsituHub(), demo=not args.no_demo, lake_subjects=args.lake_subjects, keycloak=args.keycloak)
