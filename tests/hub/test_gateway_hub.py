"""The workspace gateway, attacked for real (issue 11, items 1 and 3).

A real JupyterHub + configurable-http-proxy with LocalSandboxSpawner; alice
(project lung, dataset A) and bob (project brain, dataset B) start real
sandboxes; code runs in alice's kernel through the Jupyter kernel API, as she
would run it. The dataset service's sessions API is the stand-in of
``sandbox_support``, which records the refusals the gateway reports.

Attacks:
* kernel code removes ``jupyter.sock`` and binds its own HTTP server that
  answers every request with a dataset DICOM file: an anonymous caller, bob
  (token and browser session) and alice herself get nothing of it;
* kernel code swaps ``jupyter.sock`` for a link to bob's server: the gateway
  refuses to talk to a socket that is not held by alice's uid;
* a personal token downloads a DICOM copy (named ``notes.txt``) through the
  contents API: refused by content, and the refusal is reported with the
  session and a digest of the path, never the content;
* a researcher creates a hub API token: refused (the ``user`` role of
  ``hub.services`` has no ``tokens`` scope).
"""

from __future__ import annotations

import glob
from contextlib import closing
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from sandbox_support import StandInDatasetService, kernel_exec, make_lake_and_datasets  # noqa: E402

from tests.fixtures.jupyterhub import DEMO_PASSWORD, start_hub  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("bwrap") or not (REPO / ".venv-workspace/bin/jupyterhub-singleuser").exists(),
        reason="needs root, bubblewrap and .venv-workspace (scripts/setup.d/20-workspace-env.sh)",
    ),
]

USERS = {"alice": ["researchers", "project-lung"], "bob": ["researchers", "project-brain"], "dac1": ["dac"]}
OPTIONS = {"alice": {"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a"]},
           "bob": {"profile": "notebook-cpu", "project": "brain", "dataset_ids": ["ds-b"]}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-hub")
    layout = make_lake_and_datasets(root)
    homes = root / "homes"
    homes.mkdir()
    service = StandInDatasetService(layout, grants={("alice", "lung"): ["ds-a"], ("bob", "brain"): ["ds-b"]})
    service.start()
    runtime_root = f"/tmp/insitu-gw-{os.getpid()}"
    config = f"""
c.JupyterHub.spawner_class = "hub.sandbox.LocalSandboxSpawner"
c.LocalSandboxSpawner.dataset_service_url = {service.url!r}
c.LocalSandboxSpawner.dataset_service_token = {service.token!r}
c.LocalSandboxSpawner.home_root = {str(homes)!r}
c.LocalSandboxSpawner.runtime_root = {runtime_root!r}
c.LocalSandboxSpawner.http_timeout = 90
c.LocalSandboxSpawner.start_timeout = 90
# the platform's own roles for users (hub.services): no API tokens for researchers, no sharing
from hub.services import role_definitions
c.JupyterHub.load_roles = [r for r in c.JupyterHub.load_roles if r["name"] != "user"] + \\
    [r for r in role_definitions() if r["name"] in ("user", "insitu-api-tokens")]
# and the platform's pages (hub/frontdoor.py)
from hub import frontdoor
frontdoor.configure(c)
"""
    hub = start_hub(root / "hub", users=USERS, extra_config=config)
    yield hub, service, layout, runtime_root
    for u in USERS:
        hub.api("DELETE", f"/users/{u}/server")
    time.sleep(1)
    hub.stop()
    service.stop()
    shutil.rmtree(runtime_root, ignore_errors=True)


def start(hub, user, timeout=90):
    r = hub.api("POST", f"/users/{user}/server", json=OPTIONS[user])
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = hub.api("GET", f"/users/{user}").json()
        s = m.get("servers", {}).get("")
        if s and s.get("ready"):
            return hub.url + f"/user/{user}/"
        if not m.get("pending") and not s:
            raise AssertionError(f"server of {user} is gone:\n{hub.log()[-4000:]}")
        time.sleep(0.3)
    raise AssertionError(f"server of {user} not ready:\n{hub.log()[-4000:]}")


@pytest.fixture(scope="module")
def alice(stack):
    hub = stack[0]
    return start(hub, "alice"), hub.token_for("alice")


def browser(hub, user) -> httpx.Client:
    """A logged-in browser session (cookies) through the hub's login form."""
    c = httpx.Client(base_url=hub.url, timeout=30, follow_redirects=True)
    c.get("/hub/login")
    r = c.post("/hub/login", data={"username": user, "password": DEMO_PASSWORD, "_xsrf": c.cookies.get("_xsrf", "")})
    assert r.status_code == 200 and "/hub/login" not in str(r.url), (r.status_code, r.url)
    return c


def test_the_owner_reaches_the_server_through_the_oauth_flow(stack, alice):
    hub = stack[0]
    with closing(browser(hub, "alice")) as c:
        r = c.get("/user/alice/api/status")
        assert r.status_code == 200, (r.status_code, r.url, r.text[:300])
        assert "started" in r.json()
        # the session cookie is the gateway's, signed with its own secret; the xsrf check applies
        assert "jupyterhub-user-alice" in c.cookies
        r = c.post("/user/alice/api/contents", json={"type": "notebook"})
        # no _xsrf header: a cross-site form could not do it either
        assert r.status_code == 403, (r.status_code, r.text[:300], hub.log()[-4000:])
        r = c.post("/user/alice/api/contents", json={"type": "notebook"},
                   headers={"X-XSRFToken": c.cookies.get("_xsrf", path="/user/alice/")})
        assert r.status_code == 201, (r.text[:300], hub.log()[-4000:])


def test_quick_refusals_through_the_proxy_are_never_turned_into_503(stack, alice):
    # The proxy writes a request in two steps; a refusal answered at once and followed by close()
    # made its second write fail with EPIPE on the Unix socket, and the caller got the proxy's 503
    # instead of the 403 (about one in seven before hub/http_linger.py). The gateway lingers now.
    hub = stack[0]
    codes: dict[int, int] = {}
    with closing(browser(hub, "alice")) as c:
        for _ in range(150):
            c.get("/user/alice/api/status")
            r = c.put("/user/alice/api/contents/refused.txt", json={"type": "file"})  # no _xsrf
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
    assert codes == {403: 150}, codes


def test_others_never_reach_the_server(stack, alice):
    hub = stack[0]
    url, token = alice
    r = httpx.get(url + "api/status", timeout=30)
    assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["location"]
    assert httpx.post(url + "api/kernels", timeout=30).status_code == 403
    r = httpx.get(url + "api/status", headers={"Authorization": f"token {hub.token_for('bob')}"}, timeout=30)
    assert r.status_code == 403
    with closing(browser(hub, "bob")) as c:
        r = c.get("/user/alice/api/status")
        assert r.status_code == 403 and "started" not in r.text


def test_a_personal_token_cannot_download_a_dicom_and_the_refusal_is_traced(stack, alice):
    hub, service, layout, _ = stack
    url, token = alice
    h = {"Authorization": f"token {token}"}
    out = kernel_exec(url, token, f"""
import shutil, numpy
shutil.copyfile({layout.dataset_file('ds-a')!r}, 'notes.txt')
shutil.copyfile({layout.dataset_file('ds-a')!r}, 'scan.dcm')
open('plain.txt', 'w').write('a,b\\n1,2\\n')
print('copied')
""")
    assert "copied" in out, out
    sid = service.open_sessions()[0]
    before = len(service.refusals)
    r = httpx.get(url + "api/contents/notes.txt", params={"content": 1, "format": "base64"}, headers=h, timeout=30)
    assert r.status_code == 403 and b"DICM" not in r.content and "airlock" in r.text
    r = httpx.get(url + "api/contents/scan.dcm", params={"content": 1}, headers=h, timeout=30)
    assert r.status_code == 403 and b"DICM" not in r.content
    assert httpx.get(url + "files/scan.dcm", headers=h, timeout=30).status_code == 403
    # what is not a data file still comes through; metadata without content too
    r = httpx.get(url + "api/contents/plain.txt", params={"content": 1}, headers=h, timeout=30)
    assert r.status_code == 200 and r.json()["content"].startswith("a,b")
    r = httpx.get(url + "api/contents/notes.txt", params={"content": 0}, headers=h, timeout=30)
    assert r.status_code == 200 and r.json()["content"] is None
    # JupyterLab's own exporter probe is refused, not counted
    assert httpx.get(url + "api/nbconvert", headers=h, timeout=30).status_code == 403
    new = service.refusals[before:]
    digest = lambda p: hashlib.sha256(p.encode()).hexdigest()  # noqa: E731
    assert [(x["session_id"], x["kind"], x["channel"], x["path_digest"]) for x in new] == [
        (sid, "dicom", "contents", digest("api/contents/notes.txt")),
        (sid, "dicom", "contents", digest("api/contents/scan.dcm")),
        (sid, "download-path", "lockdown", digest("files/scan.dcm")),
    ]
    assert "notes" not in json.dumps(new) and "DICM" not in json.dumps(new)


def test_researchers_cannot_create_hub_api_tokens(stack, alice):
    hub = stack[0]
    url, token = alice
    r = httpx.post(hub.api_url + "/users/alice/tokens", json={"note": "download"},
                   headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 403, r.text
    with closing(browser(hub, "alice")) as c:
        r = c.post("/hub/api/users/alice/tokens", json={"note": "download"},
                   headers={"X-XSRFToken": c.cookies.get("_xsrf", path="/hub/")})
        assert r.status_code == 403, r.text
    tokens = hub.api("GET", "/users/alice/tokens").json()["api_tokens"]
    assert not [t for t in tokens if t.get("note") == "download"]
    # the Token page is not offered to her; a committee member (who scripts reviews) has it
    with closing(browser(hub, "alice")) as c:
        home = c.get("/hub/home")
        assert home.status_code == 200 and 'class="insitu-nav"' in home.text
        assert 'href="/hub/token"' not in home.text
    with closing(browser(hub, "dac1")) as c:
        assert 'href="/hub/token"' in c.get("/hub/home").text
        r = c.post("/hub/api/users/dac1/tokens", json={"note": "review script"},
                   headers={"X-XSRFToken": c.cookies.get("_xsrf", path="/hub/")})
        assert r.status_code == 201, r.text


def _find_server_socket(runtime_root: str, user_uid: int) -> str:
    (path,) = glob.glob(f"{runtime_root}/{user_uid}-*/srv/jupyter.sock")
    return path


def test_a_socket_swapped_for_another_users_server_is_refused(stack, alice):
    hub, service, layout, runtime_root = stack
    url, token = alice
    from hub.plan import PlanSettings, derive_uid

    start(hub, "bob")
    bob_sock = _find_server_socket(runtime_root, derive_uid("bob", PlanSettings()))
    # the path is handed to alice's code: she does not know it, the test does
    out = kernel_exec(url, token, f"""
import os
p = '/run/insitu-server/jupyter.sock'
os.rename(p, p + '.mine')
os.symlink({bob_sock!r}, p)
print('swapped')
""")
    assert "swapped" in out, out
    try:
        r = httpx.get(url + "api/status", headers={"Authorization": f"token {token}"}, timeout=30)
        assert r.status_code == 502, (r.status_code, r.text[:200])
        assert "held by uid" in hub.log()
    finally:
        # the kernel's websocket is gone with the swap: put the socket back from the host
        # (as alice's uid, in her own folder)
        import subprocess

        from hub.plan import derive_uid as du

        sock = _find_server_socket(runtime_root, du("alice", PlanSettings()))
        subprocess.run(["setpriv", f"--reuid={du('alice', PlanSettings())}", "--regid=100", "--clear-groups",
                        "/usr/bin/python3", "-c", f"import os; p={sock!r}; os.unlink(p); os.rename(p + '.mine', p)"],
                       check=True)
    assert httpx.get(url + "api/status", headers={"Authorization": f"token {token}"}, timeout=30).status_code == 200


def test_a_replaced_server_serves_nobody(stack, alice):
    """Kernel code replaces the notebook server with its own, serving a DICOM file to anyone."""
    hub, service, layout, _ = stack
    url, token = alice
    out = kernel_exec(url, token, f"""
import os, socket, socketserver, threading, http.server
data = open({layout.dataset_file('ds-a')!r}, 'rb').read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    do_POST = do_GET
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
p = '/run/insitu-server/jupyter.sock'
os.unlink(p)
srv = S(p, H)
os.chmod(p, 0o660)
threading.Thread(target=srv.serve_forever, daemon=True).start()
c = socket.socket(socket.AF_UNIX); c.connect(p); c.sendall(b'GET /x HTTP/1.0\\r\\n\\r\\n')
got = b''
while chunk := c.recv(65536):
    got += chunk
print('replaced', b'DICM' in got)
""")
    assert "replaced True" in out, out  # the impostor answers with the DICOM file
    before = len(service.refusals)
    # (a) nobody logged in
    for path in ("user/alice/", "user/alice/files/x.dcm", "user/alice/api/contents/x"):
        r = httpx.get(f"{hub.url}/{path}", timeout=30, follow_redirects=True)
        assert b"DICM" not in r.content, path
        assert r.status_code == 403 or "/hub/login" in str(r.url), (path, r.status_code, r.url)
    r = httpx.post(url + "anything", timeout=30)
    assert r.status_code == 403 and b"DICM" not in r.content
    # (b) another logged-in user: token and browser session
    r = httpx.get(url + "x", headers={"Authorization": f"token {hub.token_for('bob')}"}, timeout=30)
    assert r.status_code == 403 and b"DICM" not in r.content
    with closing(browser(hub, "bob")) as c:
        r = c.get("/user/alice/x")
        assert r.status_code == 403 and b"DICM" not in r.content
    assert len(service.refusals) == before  # nothing reached the impostor
    # alice herself: the impostor is reached, its DICOM answer is not handed out
    r = httpx.get(url + "x", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 403 and b"DICM" not in r.content
    assert [x["kind"] for x in service.refusals[before:]] == ["dicom"]
