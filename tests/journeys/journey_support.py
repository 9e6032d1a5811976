"""Support of the journey tests: a real demo dataset behind the real hub, proxy and sandbox.

* ``demo_stack(root, users, grants)``: a demo lake (``dataset_service.demo_lake``) and a
  dataset built by the real builder with the lake at ``/mnt/datalake`` (as workspaces
  see it, ACLs included), the sessions API of ``tests/hub/sandbox_support.py`` over
  it, and a real JupyterHub + configurable-http-proxy with ``LocalSandboxSpawner``.
* ``service_stack(root, grants)``: the same sandbox hub on the *real* platform services
  instead (``tests/fixtures/governance_stack.py``: the dataset service with its SQL
  database, the tracer, the airlock), the demo dataset built into the service's own
  database, released by a data manager and granted by the committee through its API.
* ``Workspace``: what a researcher's browser does with a running JupyterLab, over
  its REST and websocket APIs through the proxy: run code in a kernel, run a notebook
  cell by cell in one kernel *inside the workspace*, type in a terminal, use the
  JupyterLab settings and workspaces APIs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests" / "hub"), str(REPO / "tests" / "notebooks")]

from nb_demo import build_dataset  # noqa: E402
from sandbox_support import LAKE_MOUNT, LakeLayout, StandInDatasetService  # noqa: E402

from dataset_service.demo_lake import write_lake  # noqa: E402
from tests.fixtures.jupyterhub import start_hub  # noqa: E402


@dataclass
class ServiceEndpoint:
    """Where the spawner opens its sessions: the dataset service's address (with its prefix) and token."""
    url: str
    token: str


def sandbox_hub_config(service: StandInDatasetService | ServiceEndpoint, homes: Path, runtime_root: str,
                       wheels: Path | None = None, audit: Path | None = None) -> str:
    index = (f"c.LocalSandboxSpawner.package_index_dir = {str(wheels)!r}\n"
             f"c.LocalSandboxSpawner.package_index_audit = {str(audit)!r}\n") if wheels else ""
    return index + f"""
c.JupyterHub.spawner_class = "hub.sandbox.LocalSandboxSpawner"
c.LocalSandboxSpawner.dataset_service_url = {service.url!r}
c.LocalSandboxSpawner.dataset_service_token = {service.token!r}
c.LocalSandboxSpawner.home_root = {str(homes)!r}
c.LocalSandboxSpawner.runtime_root = {runtime_root!r}
c.LocalSandboxSpawner.http_timeout = 120
c.LocalSandboxSpawner.start_timeout = 120
c.JupyterHub.cleanup_servers = False
"""


def demo_layout(root: Path, subjects: int = 12, seed: int = 5) -> tuple[LakeLayout, str]:
    """A demo lake and one dataset of all its studies, built for workspaces (lake at /mnt/datalake)."""
    root = Path(root)
    os.chmod(root, 0o755)
    lake, datasets = root / "lake", root / "datasets"
    write_lake(lake, subjects, seed, workers=2, slices=8, size=32)
    folder = build_dataset(lake, datasets, root / "catalogue.sqlite", name="Lung CT demo",
                           lake_mount_path=LAKE_MOUNT)
    db = sqlite3.connect(root / "catalogue.sqlite")
    (gid,) = db.execute("select gid from datasets where id = ?", (folder.name,)).fetchone()
    db.close()
    os.chmod(datasets, 0o755)
    return LakeLayout(lake, datasets, {folder.name: []}, {folder.name: gid}), folder.name


def service_stack(root: Path, grants: list[tuple[str, str]], subjects: int = 2, hub_config: str = "",
                  subdomains: bool = False):
    """The sandbox hub on the real dataset service, tracer and airlock (the module doc); ``grants``:
    (user, project) pairs granted the demo dataset; ``subdomains``: per-user and per-service origins,
    the platform's default (``start_governance_stack``). A ``GovernanceStack`` with ``ds`` (the dataset id),
    ``homes`` (the workspace homes, also the airlock's) and ``runtime_root`` added; ``stop_service_stack``
    stops it."""
    import secrets

    from dataset_service.airlock.deps import build_airlock
    from dataset_service.airlock.settings import AirlockSettings
    from fixtures.governance_stack import start_governance_stack

    root = Path(root)
    layout, ds = demo_layout(root, subjects=subjects)
    homes = root / "homes"
    homes.mkdir()
    runtime_root = f"/tmp/insitu-js-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    hub_token = secrets.token_hex(24)  # the spawner's token: the hub's own service (insitu-hub)
    st = start_governance_stack(
        root / "stack", services=[{"name": "insitu-hub", "api_token": hub_token}],
        hub_config=lambda url: sandbox_hub_config(ServiceEndpoint(url, hub_token), homes, runtime_root) + hub_config,
        database_url=f"sqlite:///{root / 'catalogue.sqlite'}", lake_dir=layout.lake,
        datasets_dir=layout.datasets, lake_mount_path=LAKE_MOUNT, subdomains=subdomains)
    try:
        airlock = AirlockSettings(store_dir=root / "airlock", homes_root=homes)
        st.app.state.airlock_settings = airlock
        st.app.state.airlock = build_airlock(st.app.state.settings, airlock)
        with st.api("dora") as c:  # the data manager releases the built dataset
            r = c.post(f"/api/datasets/{ds}/state", json={"state": "released"})
            assert r.status_code == 200, r.text
        for user, project in grants:
            st.grant(ds, user, project)
    except BaseException:
        st.stop()
        raise
    st.ds, st.homes, st.runtime_root = ds, homes, runtime_root
    return st


def stop_service_stack(st, users: tuple[str, ...]) -> None:
    """Stop the users' servers, then the stack (``service_stack``)."""
    import shutil

    try:
        for user in users:
            st.hub.api("DELETE", f"/users/{user}/server")
        for user in users:
            wait_stopped(st.hub, user)
    finally:
        st.stop()
        shutil.rmtree(st.runtime_root, ignore_errors=True)


def make_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel ``name`` ``version`` (module ``name`` with ``VERSION``), as an operator
    would put in the curated folder."""
    import base64
    import hashlib
    import zipfile

    mod = name.replace("-", "_")
    files = {f"{mod}/__init__.py": f"VERSION = {version!r}\n",
             f"{mod}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{mod}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: journey\nRoot-Is-Purelib: true\n"
                                                 "Tag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{mod}-{version}.dist-info/RECORD"] = "\n".join(record + [f"{mod}-{version}.dist-info/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{mod}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return out


def wait_ready(hub, user: str, timeout: float = 150) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = hub.api("GET", f"/users/{user}").json()
        s = m.get("servers", {}).get("")
        if s and s.get("ready"):
            return s
        if not m.get("pending") and not s:
            raise AssertionError(f"server of {user} is gone:\n{hub.log()[-4000:]}")
        time.sleep(0.3)
    raise AssertionError(f"server of {user} not ready:\n{hub.log()[-4000:]}")


def wait_stopped(hub, user: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = hub.api("GET", f"/users/{user}").json()
        if not m.get("servers") and not m.get("pending"):
            return
        time.sleep(0.3)
    raise AssertionError(f"server of {user} did not stop")


@dataclass
class Workspace:
    url: str  # .../user/NAME/
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers, timeout=60, **kw)

    def put(self, path: str, body, **kw) -> httpx.Response:
        return httpx.put(self.url + path, headers=self.headers, json=body, timeout=60, **kw)

    def _ws(self, path: str) -> HTTPRequest:
        return HTTPRequest(self.url.replace("http://", "ws://") + path, headers=self.headers,
                           connect_timeout=60, request_timeout=60)

    # ---------------------------------------------------------------- kernels
    def run_cells(self, cells: list[str], cwd: str = "", timeout: float = 600) -> list[dict]:
        """Run ``cells`` one after the other in one new kernel whose working folder is ``cwd``
        (relative to the home); one result per cell: {"text", "error"}. Stops at the first error."""
        r = httpx.post(self.url + "api/sessions", headers=self.headers, timeout=60,
                       json={"path": f"{cwd}/journey-{uuid.uuid4().hex[:6]}.ipynb".lstrip("/"),
                             "type": "notebook", "name": "", "kernel": {"name": "python3"}})
        r.raise_for_status()
        session = r.json()
        kid = session["kernel"]["id"]
        try:
            return asyncio.run(self._run(kid, cells, timeout))
        finally:
            httpx.delete(self.url + f"api/sessions/{session['id']}", headers=self.headers, timeout=60)

    async def _run(self, kid: str, cells: list[str], timeout: float) -> list[dict]:
        conn = await websocket_connect(self._ws(f"api/kernels/{kid}/channels"))
        results = []
        deadline = time.monotonic() + timeout
        try:
            for code in cells:
                msg_id = uuid.uuid4().hex
                conn.write_message(json.dumps({
                    "header": {"msg_id": msg_id, "username": "journey", "session": uuid.uuid4().hex,
                               "msg_type": "execute_request", "version": "5.3"},
                    "parent_header": {}, "metadata": {}, "channel": "shell",
                    "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                                "allow_stdin": False, "stop_on_error": True},
                }))
                text, error = [], None
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"cell did not finish: {code[:200]}")
                    raw = await asyncio.wait_for(conn.read_message(), timeout=left)
                    if raw is None:
                        raise ConnectionError("kernel websocket closed")
                    m = json.loads(raw)
                    if m.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    t = m["msg_type"]
                    if t == "stream":
                        text.append(m["content"]["text"])
                    elif t == "error":
                        error = m["content"]["ename"] + ": " + m["content"]["evalue"] + "\n" + "\n".join(
                            re.sub(r"\x1b\[[0-9;]*m", "", x) for x in m["content"]["traceback"][-6:])
                    elif t == "status" and m["content"]["execution_state"] == "idle":
                        break
                results.append({"text": "".join(text), "error": error})
                if error:
                    break
        finally:
            conn.close()
        return results

    def exec(self, code: str, timeout: float = 300) -> str:
        (res,) = self.run_cells([code], timeout=timeout)
        if res["error"]:
            raise AssertionError(res["error"] + "\n" + res["text"])
        return res["text"]

    def run_notebook(self, path: str, prelude: str = "", timeout: float = 900) -> list[dict]:
        """Run the code cells of the notebook at ``path`` (in the home) in a kernel of the workspace,
        its working folder the notebook's folder, as "Run all" in JupyterLab does."""
        r = self.get("api/contents/" + path)
        r.raise_for_status()
        nb = r.json()["content"]
        cells = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                 for c in nb["cells"] if c["cell_type"] == "code"]
        cwd = path.rsplit("/", 1)[0] if "/" in path else ""
        return self.run_cells(([prelude] if prelude else []) + cells, cwd=cwd, timeout=timeout)

    # ---------------------------------------------------------------- terminals
    def terminal(self, command: str, marker: str = "JOURNEY-END", timeout: float = 120) -> str:
        """Type ``command`` in a new JupyterLab terminal; the screen text up to ``marker``."""
        r = httpx.post(self.url + "api/terminals", headers=self.headers, timeout=60)
        r.raise_for_status()
        name = r.json()["name"]
        try:
            return asyncio.run(self._terminal(name, command, marker, timeout))
        finally:
            httpx.delete(self.url + f"api/terminals/{name}", headers=self.headers, timeout=60)

    async def _terminal(self, name: str, command: str, marker: str, timeout: float) -> str:
        conn = await websocket_connect(self._ws(f"terminals/websocket/{name}"))
        out = []
        try:
            conn.write_message(json.dumps(["stdin", f"{command}; echo {marker[:3]}''{marker[3:]}\r"]))
            deadline = time.monotonic() + timeout
            while marker not in "".join(out):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("terminal output so far:\n" + "".join(out)[-3000:])
                raw = await asyncio.wait_for(conn.read_message(), timeout=left)
                if raw is None:
                    break
                m = json.loads(raw)
                if m[0] == "stdout":
                    out.append(m[1])
        finally:
            conn.close()
        return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07|\r", "", "".join(out))


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def browser_journey_marks() -> list:
    """The marks of a journey in Chromium on the sandbox: skipped where these cannot run."""
    import shutil

    import pytest

    return [pytest.mark.browser, pytest.mark.sandbox, pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("bwrap") or not os.path.exists(CHROMIUM)
        or not (REPO / ".venv-workspace/bin/jupyterhub-singleuser").exists(),
        reason="needs root, bubblewrap, chromium and .venv-workspace")]


def off_loop(fn, *args):
    """Run ``fn`` in a thread: Playwright's sync API keeps an event loop running in this one."""
    import threading

    out = {}
    t = threading.Thread(target=lambda: out.update(r=fn(*args)))
    t.start()
    t.join(300)
    return out.get("r")


def browser_login(browser, url: str, user: str, password: str):
    """A new browser context of ``user``, logged in at the hub's login form that ``url`` is or leads to,
    then where the hub sends it (back at ``url`` through OAuth for a service's page): (context, page)."""
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    page.goto(url)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.locator("#login_submit, input[type=submit], button[type=submit]").first.click()
    page.wait_for_url(lambda u: "/login" not in u and "oauth" not in u)
    page.wait_for_load_state()
    return ctx, page


def git_status(paths: tuple[str, ...] = ()) -> list[str]:
    """``git status --porcelain`` of the checkout, ignored files included, for ``paths`` (all if empty)."""
    import subprocess

    out = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--ignored=matching",
                          "--untracked-files=all", "--", *paths], capture_output=True, text=True, check=True)
    return sorted(line for line in out.stdout.splitlines() if "__pycache__/" not in line)


__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "REPO", "ServiceEndpoint", "StandInDatasetService", "Workspace", "demo_layout", "git_status", "make_wheel", "off_loop",
           "browser_journey_marks", "browser_login", "sandbox_hub_config",
           "service_stack", "start_hub", "stop_service_stack", "wait_ready", "wait_stopped"]
