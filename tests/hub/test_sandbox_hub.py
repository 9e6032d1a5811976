"""End to end: a real JupyterHub + configurable-http-proxy with LocalSandboxSpawner.

alice (project lung) holds a grant for dataset A only. Her workspace is
started through the hub's REST API; code runs in its kernel through the proxy.
The dataset service's sessions API is the stand-in of ``sandbox_support``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from sandbox_support import StandInDatasetService, kernel_exec, make_lake_and_datasets  # noqa: E402

from tests.fixtures.jupyterhub import start_hub  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("bwrap") or not (REPO / ".venv-workspace/bin/jupyterhub-singleuser").exists(),
        reason="needs root, bubblewrap and .venv-workspace (scripts/setup.d/20-workspace-env.sh)",
    ),
]

RESTART: list = []
OPTIONS_A = {"profile": "notebook-cpu", "project": "lung", "dataset_ids": ["ds-a"]}


def sandbox_hub_config(service: StandInDatasetService, homes: Path, runtime_root: str) -> str:
    return f"""
c.JupyterHub.spawner_class = "hub.sandbox.LocalSandboxSpawner"
c.LocalSandboxSpawner.dataset_service_url = {service.url!r}
c.LocalSandboxSpawner.dataset_service_token = {service.token!r}
c.LocalSandboxSpawner.home_root = {str(homes)!r}
c.LocalSandboxSpawner.runtime_root = {runtime_root!r}
c.LocalSandboxSpawner.http_timeout = 90
c.LocalSandboxSpawner.start_timeout = 90
c.JupyterHub.cleanup_servers = False
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox-hub")
    layout = make_lake_and_datasets(root)
    homes = root / "homes"
    homes.mkdir()
    service = StandInDatasetService(layout, grants={("alice", "lung"): ["ds-a"], ("carol", "lung"): ["ds-a", "ds-b"]})
    service.start()
    runtime_root = f"/tmp/insitu-ws-{os.getpid()}"
    users = {"alice": ["researchers", "project-lung"], "bob": ["researchers", "project-brain"],
             "carol": ["researchers", "project-lung"]}
    config = sandbox_hub_config(service, homes, runtime_root)
    hub = start_hub(root / "hub", users=users, extra_config=config)
    st = [hub, service, layout, homes]
    RESTART[:] = [lambda: start_hub(root / "hub", users=users, extra_config=config, ports=hub.ports)]
    yield st
    hub = st[0]
    for u in users:
        hub.api("DELETE", f"/users/{u}/server")
    time.sleep(1)
    hub.stop()
    service.stop()
    shutil.rmtree(runtime_root, ignore_errors=True)


def wait_ready(hub, user, timeout=90):
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


def wait_stopped(hub, user, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = hub.api("GET", f"/users/{user}").json()
        if not m.get("servers") and not m.get("pending"):
            return
        time.sleep(0.3)
    raise AssertionError(f"server of {user} did not stop")


@pytest.fixture(scope="module")
def alice(stack):
    hub, service, layout, homes = stack
    r = hub.api("POST", "/users/alice/server", json=OPTIONS_A)
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "alice")
    return hub.url + "/user/alice/", hub.token_for("alice")


def test_workspace_answers_through_the_proxy_over_a_unix_socket(stack, alice):
    hub, service, layout, homes = stack
    url, token = alice
    r = httpx.get(url + "api/status", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    # the hub recorded a Unix-socket server (no TCP port): read its own database
    import sqlite3

    db = sqlite3.connect(hub.workdir / "jupyterhub.sqlite")
    rows = db.execute("select proto from servers where base_url = '/user/alice/'").fetchall()
    db.close()
    assert rows == [("http+unix",)], rows
    assert len(service.open_sessions()) == 1


def test_kernel_runs_sandboxed_with_dataset_a_only(stack, alice):
    hub, service, layout, homes = stack
    url, token = alice
    code = f"""
import os, json, socket, errno
res = {{"uid": os.getuid(), "groups": os.getgroups()}}
def t(name, fn):
    try:
        res[name] = ["ok", fn()]
    except OSError as e:
        res[name] = ["err", errno.errorcode[e.errno]]
t("read_a", lambda: len(open({layout.dataset_file('ds-a')!r}, 'rb').read()))
t("read_b", lambda: len(open({layout.lake_file('ds-b')!r}, 'rb').read()))
t("list_lake", lambda: os.listdir('/mnt/datalake'))
t("write_lake", lambda: open('/mnt/datalake/x', 'w').write('x'))
t("write_ds", lambda: open('/mnt/datasets/ds-a/x', 'w').write('x'))
t("ifaces", lambda: [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]])
t("hub_port", lambda: socket.create_connection(('127.0.0.1', {int(hub.hub_url.rsplit(':', 1)[1])}), timeout=2).close())
print(json.dumps(res))
"""
    out = kernel_exec(url, token, code)
    res = json.loads(out.strip().splitlines()[-1])
    assert res["uid"] >= 200000 and res["groups"] == [layout.gids["ds-a"]]
    assert res["read_a"][0] == "ok" and res["read_a"][1] > 128
    assert res["read_b"] == ["err", "EACCES"]
    assert res["list_lake"] == ["err", "EACCES"]
    assert res["write_lake"][0] == "err" and res["write_ds"][0] == "err"
    assert res["ifaces"] == ["ok", ["lo"]]
    assert res["hub_port"] == ["err", "ECONNREFUSED"]  # the hub's TCP port on the host is not reachable


def test_downloads_are_refused(stack, alice):
    hub, service, layout, homes = stack
    url, token = alice
    h = {"Authorization": f"token {token}"}
    # the dataset file as seen from the home (the server's root is the home): make a link to it
    kernel_exec(url, token, f"import os; os.symlink({layout.dataset_file('ds-a')!r}, 'scan.dcm'); "
                            "open('notes.ipynb','w').write('{\"cells\":[],\"metadata\":{},\"nbformat\":4,\"nbformat_minor\":5}')")
    assert httpx.get(url + "api/contents/notes.ipynb", headers=h, timeout=30).status_code == 200
    for p in ("files/scan.dcm", "files/notes.ipynb", "files/scan.dcm?download=1", "api/contents/notes.ipynb?download=1",
              "nbconvert/html/notes.ipynb", "nbconvert/html/notes.ipynb?download=true", "view/scan.dcm",
              "api/nbconvert", "//files/scan.dcm", "fil%65s/scan.dcm"):
        r = httpx.get(url + p, headers=h, timeout=30)
        assert r.status_code == 403, (p, r.status_code, r.text[:200])
        assert b"DICM" not in r.content
    r = httpx.post(url + "nbconvert/html/notes.ipynb", headers=h, timeout=30)
    assert r.status_code == 403


def test_lab_page_disables_download_commands(stack, alice):
    hub, service, layout, homes = stack
    url, token = alice
    r = httpx.get(url + "lab", headers={"Authorization": f"token {token}"}, timeout=30, follow_redirects=True)
    assert r.status_code == 200
    text = r.text
    start = text.index('id="jupyter-config-data"')
    cfg = json.loads(text[text.index(">", start) + 1: text.index("</script>", start)])
    disabled = cfg.get("disabledExtensions")
    for plugin in ("@jupyterlab/docmanager-extension:download", "@jupyterlab/filebrowser-extension:download",
                   "@jupyterlab/notebook-extension:export"):
        assert plugin in disabled, (plugin, disabled)


def test_forged_options_naming_another_dataset_are_refused(stack):
    hub, service, layout, homes = stack
    before = set(service.sessions)
    r = hub.api("POST", "/users/bob/server",
                json={"profile": "notebook-cpu", "project": "brain", "dataset_ids": ["ds-b"]})
    # the spawn fails (fail closed): either the request errors or the server never comes up
    if r.status_code in (201, 202):
        time.sleep(2)
    m = hub.api("GET", "/users/bob").json()
    assert not m.get("servers"), m
    assert set(service.sessions) == before  # the service refused; nothing opened
    # carol asking for A in a project that holds no grant for it: refused too
    r = hub.api("POST", "/users/carol/server",
                json={"profile": "notebook-cpu", "project": "brain", "dataset_ids": ["ds-a"]})
    if r.status_code in (201, 202):
        time.sleep(2)
    assert not hub.api("GET", "/users/carol").json().get("servers")
    assert set(service.sessions) == before


def test_service_down_means_no_workspace(stack):
    hub, service, layout, homes = stack
    service.fail_open = True
    try:
        r = hub.api("POST", "/users/carol/server", json={**OPTIONS_A})
        time.sleep(1)
        assert not hub.api("GET", "/users/carol").json().get("servers")
    finally:
        service.fail_open = False
    assert "dataset service" in hub.log()


def test_workspace_survives_a_hub_restart(stack, alice):
    hub, service, layout, homes = stack
    url, token = alice
    sid = service.open_sessions()
    hub.stop()
    hub2 = RESTART[0]()
    stack[0] = hub2
    assert wait_ready(hub2, "alice", timeout=30)
    # the new proxy routes to the same sandbox; the hub API forwarder is back
    url2 = hub2.url + "/user/alice/"
    token = hub2.token_for("alice")  # a new token: the server must ask the hub (through hub.sock)
    r = httpx.get(url2 + "api/status", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, (r.status_code, hub2.log()[-3000:])
    assert service.open_sessions() == sid
    out = kernel_exec(url2, token, "import os; print(os.getuid())")
    assert out.strip().isdigit()


def test_stop_closes_the_session_and_removes_the_sandbox(stack, alice):
    hub, service, layout, homes = stack
    open_before = service.open_sessions()
    assert len(open_before) == 1
    r = hub.api("DELETE", "/users/alice/server")
    assert r.status_code in (202, 204)
    wait_stopped(hub, "alice")
    assert service.open_sessions() == []
    assert open_before[0] in service.closed
    # no process of alice's uid is left
    import subprocess

    from hub.plan import PlanSettings, derive_uid

    uid = derive_uid("alice", PlanSettings())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        uids = subprocess.run(["ps", "-eo", "uid="], capture_output=True, text=True).stdout.split()
        if str(uid) not in uids:
            break
        time.sleep(0.2)
    assert str(uid) not in uids
