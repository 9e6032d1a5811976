"""``python -m hub up`` end to end: the embedded default, as ``make up`` runs it.

One run of the real thing (JupyterHub, configurable-http-proxy, the dataset
service, the tracer, the dev chain and the reconciler as managed services, the
local sandbox spawner) on free loopback ports with its state in a temporary
folder:

- the demo logins printed work through the login form, with their groups, and
  the dataset service's pages log the browser in through the hub's OAuth;
- the researcher's options form lists the granted dataset and not the other;
- a workspace starts in the sandbox with the granted dataset and answers;
  a forged start naming the other dataset is refused;
- the grant is revoked by a DAC member: the reconciler stops the workspace
  within a minute and the session is closed; USE_DATASETS, END_SESSION and
  REVOKE_ACCESS are in the tracer;
- Ctrl-C stops every process; a second run reuses the lake, the demo content
  and the logins.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fixtures.jupyterhub import REPO
from hub.up import DemoUser

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def _free_block(n: int = 6) -> int:
    """A base port with ``n`` free consecutive ports above it."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65535:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


class Up:
    def __init__(self, var: Path):
        self.var = var
        base = _free_block()
        self.port = base
        self.env = dict(os.environ, INSITU_HUB_API_PORT=str(base + 1), INSITU_PROXY_API_PORT=str(base + 2),
                        INSITU_DATASET_SERVICE_PORT=str(base + 3), INSITU_TRACER_PORT=str(base + 4),
                        INSITU_CHAIN_PORT=str(base + 5), INSITU_RECONCILE_INTERVAL="10")
        # per-user and per-service origins below the hub's (hub.settings.InsituHub.subdomain_host)
        self.url = f"http://localhost:{base}"
        self.ds = f"http://dataset-service--service.localhost:{base}/services/dataset-service"
        self.tracer = f"http://tracer--service.localhost:{base}/services/tracer"
        self.out = var.parent / f"up-{base}.log"

    def start(self, timeout: float = 420) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "up", "--port", str(self.port), "--var", str(self.var),
             "--lake-subjects", "6"],
            cwd=REPO, env=self.env, stdout=open(self.out, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if "insitu is running at" in text:
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"make up did not come up:\n{self.output()}\n{self.hub_log()}")

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def hub_log(self) -> str:
        p = self.var / "log" / "jupyterhub.log"
        return p.read_text(errors="replace")[-6000:] if p.exists() else ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _traces(tracer: str, auditor: DemoUser, **params) -> list[dict]:
    r = httpx.get(tracer + "/traces", params=params, timeout=30,
                  headers={"Authorization": f"token {auditor.token}"})
    assert r.status_code == 200, r.text
    return r.json()["traces"]


def _compiled_in_checkout(since: float) -> list[str]:
    return [str(p) for top in ("hub", "dataset_service", "tracer", "insitu") for p in (REPO / top).rglob("*.pyc")
            if p.stat().st_mtime >= since]


def test_make_up_end_to_end(tmp_path):
    t0 = time.time()
    var = tmp_path / "var"
    up = Up(var)
    banner = up.start()
    try:
        logins = json.loads((var / "secrets" / "demo-logins.json").read_text())
        demo = json.loads((var / "demo.json").read_text())
        for name, pw in logins.items():
            assert f"{name:<7} {pw}" in banner  # every demo login is printed
        granted, other = demo["granted_dataset"], [d for d in demo["datasets"] if d != demo["granted_dataset"]][0]

        # researchers create no API tokens themselves: the administrator's session makes theirs
        admin = DemoUser(up.url, "admin", logins["admin"], api_url=up.ds)
        alice = DemoUser(up.url, "alice", logins["alice"], api_url=up.ds, issuer=admin)
        model = httpx.get(up.url + "/hub/api/user", headers={"Authorization": f"token {alice.token}"}).json()
        assert sorted(model["groups"]) == ["project-lung", "researchers"]

        # the dataset service's pages log the browser in through the hub's OAuth
        page = alice.web.get(up.ds + "/", follow_redirects=True)
        assert page.status_code == 200, page.text[:300]
        assert page.url.path == "/services/dataset-service/" and "Demo cohort A" in page.text

        form = alice.web.get("/hub/spawn")
        assert form.status_code == 200
        assert granted in form.text and other not in form.text

        # a forged start naming the other dataset is refused: no server
        r = alice.web.post("/hub/spawn", data={"_xsrf": alice.xsrf, "profile": "notebook-cpu",
                                                "project": "lung", "dataset": other})
        time.sleep(3)
        servers = httpx.get(up.url + "/hub/api/user", headers={"Authorization": f"token {alice.token}"}).json()
        assert not any(s.get("ready") for s in (servers.get("servers") or {}).values())

        r = alice.web.post("/hub/spawn", data={"_xsrf": alice.xsrf, "profile": "notebook-cpu",
                                                "project": "lung", "dataset": granted})
        assert r.status_code == 302, r.text[:500]
        deadline = time.monotonic() + 120
        srv = None
        while time.monotonic() < deadline:
            m = httpx.get(up.url + "/hub/api/user", headers={"Authorization": f"token {alice.token}"}).json()
            srv = (m.get("servers") or {}).get("")
            if srv and srv.get("ready"):
                break
            time.sleep(0.5)
        assert srv and srv.get("ready"), up.hub_log()
        assert srv["user_options"]["dataset_ids"] == [granted]
        r = httpx.get(up.url.replace("//localhost", "//alice.localhost") + "/user/alice/api/status",
                      headers={"Authorization": f"token {alice.token}"})
        assert r.status_code == 200

        audrey = DemoUser(up.url, "audrey", logins["audrey"], api_url=up.ds)
        assert _traces(up.tracer, audrey, action="USE_DATASETS", dataset=granted)
        # the tracer's auditor pages log the browser in through the hub too; a researcher is refused
        page = audrey.web.get(up.tracer + "/", params={"action": "USE_DATASETS"}, follow_redirects=True)
        assert page.status_code == 200 and page.url.path == "/services/tracer/", page.text[:500]
        assert "USE_DATASETS" in page.text and granted in page.text
        assert alice.web.get(up.tracer + "/", follow_redirects=True).status_code == 403

        # revocation: stopped within a minute, session closed, traced
        dac1 = DemoUser(up.url, "dac1", logins["dac1"], api_url=up.ds)
        dac1.call("POST", f"/api/grants/{demo['grant_id']}/revoke", json={"reason": "end-to-end test"})
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            m = httpx.get(up.url + "/hub/api/user", headers={"Authorization": f"token {alice.token}"}).json()
            if not m.get("servers"):
                break
            time.sleep(1)
        assert not m.get("servers"), f"still running after {time.monotonic() - t0:.0f} s"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _traces(up.tracer, audrey, action="END_SESSION", dataset=granted):
            time.sleep(1)
        assert _traces(up.tracer, audrey, action="END_SESSION", dataset=granted)
        assert _traces(up.tracer, audrey, action="REVOKE_ACCESS", dataset=granted)
        for u in (alice, audrey, dac1, admin):
            u.close()
    finally:
        rc = up.stop()
    assert rc == 0, up.output()
    assert "stopped" in up.output()
    for port in range(up.port, up.port + 6):
        assert not _listening(port), f"port {port} still open after Ctrl-C"

    # a second run reuses what is there
    again = Up(var)
    text = again.start()
    try:
        assert "reusing the lake" in text and "reusing the demo content" in text
        assert json.loads((var / "secrets" / "demo-logins.json").read_text()) == logins
        admin = DemoUser(again.url, "admin", logins["admin"], api_url=again.ds)
        bob = DemoUser(again.url, "bob", logins["bob"], api_url=again.ds, issuer=admin)
        bob.close()
        admin.close()
    finally:
        assert again.stop() == 0
    # nothing the platform ran (hub, services, reconciler, chain) compiled into the checkout
    assert _compiled_in_checkout(t0) == []
