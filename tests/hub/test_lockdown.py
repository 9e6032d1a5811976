"""The workspace lock-down extension (hub/workspace/lockdown.py), with real HTTP.

A plain jupyter-server (no sandbox, no hub) is started with the workspace's
read-only config folder; every download route must answer 403 while the
contents API keeps working. The sandbox end-to-end test repeats the HTTP
checks behind the real proxy.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.workspace.lockdown import BLOCKED_PREFIXES, DISABLED_LAB_PLUGINS, is_blocked

REPO = Path(__file__).resolve().parents[2]
ETC = REPO / "hub" / "workspace" / "etc" / "jupyter"


@pytest.mark.parametrize(
    "path,query,blocked",
    [
        ("/user/a/files/x.dcm", {}, True),
        ("/user/a/files", {}, True),  # the bare route too
        ("/user/a//files/x.dcm", {}, True),
        ("/user/a/%66iles/x.dcm", {}, True),
        ("/user/a/view/x.dcm", {}, True),
        ("/user/a/nbconvert/html/n.ipynb", {}, True),
        ("/user/a/api/nbconvert", {}, True),
        ("/user/a/api/contents/n.ipynb", {"download": [b"1"]}, True),
        ("/user/a/api/contents/n.ipynb", {"DownLoad": [b"1"]}, True),
        ("/user/a/api/contents/n.ipynb", {}, False),
        ("/user/a/lab", {}, False),
        ("/user/b/files/x", {}, False),  # another base url: not this server's route
    ],
)
def test_is_blocked(path, query, blocked):
    assert is_blocked(path, query, "/user/a/") is blocked


def test_page_config_and_code_agree():
    cfg = json.loads((ETC / "labconfig" / "page_config.json").read_text())
    assert set(cfg["disabledExtensions"]) == set(DISABLED_LAB_PLUGINS)
    server_cfg = json.loads((ETC / "jupyter_server_config.json").read_text())
    assert server_cfg["ServerApp"]["jpserver_extensions"]["insitu_workspace"] is True
    assert "files/" in BLOCKED_PREFIXES and "nbconvert/" in BLOCKED_PREFIXES


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lockdown")
    home = root / "home"
    home.mkdir()
    (home / "scan.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 64)
    (home / "notes.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    pkg = root / "python"
    pkg.mkdir()
    os.symlink(REPO / "hub" / "workspace", pkg / "insitu_workspace")
    token = secrets.token_hex(16)
    sock = root / "s.sock"
    etc = root / "etc"  # a copy: jupyter writes a marker file into its config folder
    shutil.copytree(ETC, etc)
    env = {**os.environ, "PYTHONPATH": str(pkg), "JUPYTER_CONFIG_DIR": str(etc), "JUPYTER_CONFIG_PATH": str(etc),
           "JUPYTER_RUNTIME_DIR": str(root / "rt"), "HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--sock={sock}", f"--ServerApp.root_dir={home}",
         f"--IdentityProvider.token={token}", "--ServerApp.base_url=/user/a/", "--allow-root", "--no-browser"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(root / "log", "wb"), start_new_session=True,
    )
    client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://localhost/user/a/",
                          headers={"Authorization": f"token {token}"}, timeout=30)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.get("api/status").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError((root / "log").read_text()[-3000:])
        time.sleep(0.2)
    yield client
    client.close()
    proc.terminate()
    proc.wait(10)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "files/scan.dcm"),
        ("GET", "files/scan.dcm?download=1"),
        ("HEAD", "files/scan.dcm"),
        ("GET", "files/notes.ipynb"),
        ("GET", "view/scan.dcm"),
        ("GET", "nbconvert/html/notes.ipynb"),
        ("GET", "nbconvert/html/notes.ipynb?download=true"),
        ("POST", "nbconvert/html"),
        ("GET", "api/nbconvert"),
        ("GET", "api/contents/scan.dcm?download=1"),
        ("GET", "%66iles/scan.dcm"),
        ("GET", "files/../files/scan.dcm"),
    ],
)
def test_download_routes_answer_403(server, method, path):
    r = server.request(method, path)
    assert r.status_code == 403, (path, r.status_code, r.text[:200])
    assert b"DICM" not in r.content
    if method != "HEAD":  # refused by the lock-down, not by some other check
        assert "Downloads are disabled" in r.text


def test_the_rest_of_the_server_still_works(server):
    assert server.get("api/contents/notes.ipynb").status_code == 200
    assert server.get("api/contents").status_code == 200
    r = server.get("lab")
    assert r.status_code == 200
    for plugin in DISABLED_LAB_PLUGINS:
        assert plugin in r.text
