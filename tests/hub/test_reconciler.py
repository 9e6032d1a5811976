"""The revocation reconciler against a real JupyterHub with real servers.

The servers are real processes started by JupyterHub's simple local spawner
(a tiny HTTP server in place of jupyter-server, see ``TINY_SERVER``). The
dataset service side is a small stand-in HTTP app serving ``GET /api/sessions/uncovered`` and ``DELETE /api/sessions/{id}`` exactly as in
docs/CONTRACTS.md §3 (the real service is used in the integration test).
The hub token is the ``insitu-hub`` service's, with the roles of
``hub.services.role_definitions`` (least privilege is part of what is tested).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException

from fixtures.jupyterhub import REPO, free_port, start_hub
from hub.reconciler import HubAPI, RevocationReconciler, dataset_service_client, server_matches, servers_to_stop


def test_server_matching_rules():
    s_lung = {"user_options": {"project": "lung"}}
    s_sid = {"user_options": {"project": "lung", "session_id": "s9"}}
    s_none = {"user_options": {}}
    assert server_matches(s_lung, session_id="s1", project="lung")
    assert server_matches(s_lung, session_id="s1", project="project-lung")
    assert not server_matches(s_lung, session_id="s1", project="brain")
    assert server_matches(s_sid, session_id="s9", project="brain")  # the session id decides
    assert not server_matches(s_sid, session_id="s1", project="lung")
    assert server_matches(s_none, session_id="s1", project="lung")  # unknown: fail closed
    model = {"servers": {"": s_lung, "b": {"user_options": {"project": "brain"}}, "x": s_none}}
    assert servers_to_stop(model, session_id="s1", project="lung") == ["", "x"]
    assert servers_to_stop(None, session_id="s1", project="lung") == []


class StandInSessions:
    """Stand-in for the dataset service's session endpoints (contract §3)."""

    def __init__(self, token: str):
        self.token = token
        self.uncovered: list[dict] = []
        self.closed: list[str] = []
        self.fail = False
        app = FastAPI()
        prefix = "/services/dataset-service/api/sessions"

        def check(auth: str | None):
            if auth != f"token {self.token}":
                raise HTTPException(401, "bad token")

        from fastapi import Header

        @app.get(prefix + "/uncovered")
        def uncovered(authorization: str | None = Header(None)):
            check(authorization)
            if self.fail:
                raise HTTPException(503, "down")
            return [s for s in self.uncovered if s["session_id"] not in self.closed]

        @app.delete(prefix + "/{sid}", status_code=204)
        def close(sid: str, authorization: str | None = Header(None)):
            check(authorization)
            if sid not in {s["session_id"] for s in self.uncovered}:
                raise HTTPException(404, "no such session")
            self.closed.append(sid)

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(5)


# A tiny stand-in for the notebook server (answers 200 on its URL, exits on
# SIGTERM at once): these tests are about stopping, not about notebooks; the
# real workspace server is started in the integration test.
TINY_SERVER = (
    "import os, http.server, urllib.parse\n"
    "u = urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL'])\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer((u.hostname, u.port), H).serve_forever()\n"
)

SPAWNER_CONFIG = textwrap.dedent(f"""
    import sys
    from hub.services import role_definitions
    c.JupyterHub.load_roles += [r for r in role_definitions() if r["name"] == "insitu-hub"]
    c.JupyterHub.spawner_class = "simple"
    c.JupyterHub.allow_named_servers = True
    c.Spawner.cmd = [sys.executable, "-c", {TINY_SERVER!r}]
    c.Spawner.args = []
    c.Spawner.http_timeout = 30
    c.Spawner.start_timeout = 30
""")



@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    work = tmp_path_factory.mktemp("rechub")
    users = {"alice": ["researchers", "project-lung", "project-brain"], "bob": ["researchers", "project-brain"]}
    h = start_hub(work, users=users, extra_config=SPAWNER_CONFIG)
    yield h
    h.stop()


def _start(hub, user: str, name: str, options: dict) -> None:
    path = f"/users/{user}/server" if not name else f"/users/{user}/servers/{name}"
    r = hub.api("POST", path, json=options)
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        srv = hub.api("GET", f"/users/{user}").json()["servers"].get(name)
        if srv and srv.get("ready"):
            return
        time.sleep(0.3)
    raise AssertionError(f"server {user}/{name} did not start:\n{hub.log()[-3000:]}")


def _running(hub, user: str) -> set[str]:
    return {n for n, s in hub.api("GET", f"/users/{user}").json()["servers"].items() if s.get("ready")}


def test_uncovered_session_stops_its_server_and_closes_it(hub):
    _start(hub, "alice", "", {"project": "lung"})
    _start(hub, "alice", "brainwork", {"project": "brain"})
    _start(hub, "bob", "", {"project": "brain"})
    token = hub.service_tokens["insitu-hub"]
    ds = StandInSessions(token)
    try:
        ds.uncovered = [{"session_id": "s-lung-1", "user": "alice", "project": "lung",
                         "dataset_ids": ["ds-a"], "reason": "grant revoked"}]
        rec = RevocationReconciler(HubAPI(hub.api_url, token), dataset_service_client(ds.url, token))
        report = asyncio.run(rec.run_once())
        assert report.error is None
        assert report.stopped == ["alice/"]
        assert report.closed == ["s-lung-1"] and ds.closed == ["s-lung-1"]
        assert _running(hub, "alice") == {"brainwork"}  # the other project's server stays
        assert _running(hub, "bob") == {""}

        # a second pass has nothing to do
        report = asyncio.run(rec.run_once())
        assert report.uncovered == 0 and not report.stopped

        # the service is down: nothing is stopped or closed
        ds.fail = True
        ds.uncovered.append({"session_id": "s-brain-2", "user": "bob", "project": "brain",
                             "dataset_ids": ["ds-b"], "reason": "dataset invalidated"})
        report = asyncio.run(rec.run_once())
        assert report.error and not report.stopped
        assert _running(hub, "bob") == {""}

        # the hub is unreachable: the session stays open for the next pass
        ds.fail = False
        dead = RevocationReconciler(HubAPI(f"http://127.0.0.1:{free_port()}/hub/api", token),
                                    dataset_service_client(ds.url, token))
        report = asyncio.run(dead.run_once())
        assert report.kept_open == ["s-brain-2"] and "s-brain-2" not in ds.closed

        # a token without the insitu-hub role cannot stop servers: nothing is closed
        weak = hub.token_for("alice")
        rec_weak = RevocationReconciler(HubAPI(hub.api_url, weak), dataset_service_client(ds.url, token))
        report = asyncio.run(rec_weak.run_once())
        assert report.kept_open == ["s-brain-2"] and _running(hub, "bob") == {""}
        assert "lacks the scopes" in report.error and "s-brain-2" not in ds.closed

        # with the right token the pass completes
        report = asyncio.run(rec.run_once())
        assert report.stopped == ["bob/"] and report.closed == ["s-brain-2"]
        assert _running(hub, "bob") == set()
    finally:
        ds.stop()


def test_reconciler_process_stops_within_its_interval(hub):
    """``python -m hub.reconciler`` as the insitu-hub service would run it."""
    _start(hub, "bob", "", {"project": "brain"})
    token = hub.service_tokens["insitu-hub"]
    ds = StandInSessions(token)
    env = dict(os.environ, JUPYTERHUB_API_URL=hub.api_url, JUPYTERHUB_API_TOKEN=token,
               INSITU_DATASET_SERVICE_URL=ds.url)
    proc = subprocess.Popen([sys.executable, "-m", "hub.reconciler", "--interval", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        time.sleep(1.5)
        assert _running(hub, "bob") == {""}
        t0 = time.monotonic()
        ds.uncovered = [{"session_id": "s-b", "user": "bob", "project": "brain",
                         "dataset_ids": ["ds-b"], "reason": "grant expired"}]
        while time.monotonic() - t0 < 30 and "s-b" not in ds.closed:
            time.sleep(0.2)
        assert "s-b" in ds.closed
        assert _running(hub, "bob") == set()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
        ds.stop()
    assert proc.returncode == 0, out
    assert "closed session s-b" in out
