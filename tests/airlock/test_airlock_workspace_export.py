"""The workspace command (``python -m hub.workspace.export``), its drafts, and the web forms' guards."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from airlock_files import npy_bytes, png_bytes
from fixtures.jupyterhub import REPO
from hub.workspace.export import ExportError, name_in_home


def test_name_in_home(tmp_path):
    home = tmp_path / "home"
    (home / "r").mkdir(parents=True)
    (home / "r" / "a.txt").write_text("a")
    os.symlink(home / "r" / "a.txt", home / "link.txt")
    os.symlink(home / "r", home / "rl")
    assert name_in_home("r/a.txt", home, cwd=home) == "r/a.txt"
    assert name_in_home("a.txt", home, cwd=home / "r") == "r/a.txt"
    assert name_in_home(str(home / "r" / "./a.txt"), home) == "r/a.txt"
    for bad in ("link.txt", "rl/a.txt", "r", "../x", "/etc/passwd", "missing.txt"):
        with pytest.raises(ExportError):
            name_in_home(bad, home, cwd=home)


def run_cli(home, *args, env=None):
    e = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO),
         "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "hub.workspace.export", *args], cwd=home, env=e,
                          capture_output=True, text=True, timeout=60)


def test_cli_writes_a_draft_with_digests(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    (home / "m.json").write_bytes(b'{"auc": 0.9}')
    out = run_cli(home, "m.json", "--justification", "metrics of the model", env={"INSITU_SESSION_ID": "s-1"})
    assert out.returncode == 0, out.stderr
    [draft_file] = list((home / ".insitu" / "exports").glob("*.json"))
    d = json.loads(draft_file.read_text())
    assert d["format"] == "insitu-export-draft/1" and d["session_id"] == "s-1"
    assert d["files"] == [{"name": "m.json", "sha256": hashlib.sha256(b'{"auc": 0.9}').hexdigest(), "size": 12}]
    assert f"exports/new?draft={d['id']}" in out.stdout
    assert oct(draft_file.stat().st_mode & 0o777) == "0o600"
    bad = run_cli(home, "m.json", "--justification", "short")
    assert bad.returncode == 2 and "justification" in bad.stderr
    bad = run_cli(home, "/etc/hostname", "--justification", "long enough text")
    assert bad.returncode == 2 and "home" in bad.stderr


def test_draft_submission_checks_digests(airlock_stack):
    a = airlock_stack
    sid, _ = a.open_session("ayla", "exports-a")
    home = a.home("ayla")
    a.write("ayla", "d/fig.png", png_bytes(50, 40))
    a.write("ayla", "d/vol.npy", npy_bytes((40, 40, 40)))
    out = run_cli(home, "d/fig.png", "d/vol.npy", "--justification", "figure and a prediction volume",
                  env={"INSITU_SESSION_ID": sid})
    assert out.returncode == 0, out.stderr
    draft = out.stdout.split("draft=")[1].split()[0]
    with a.api("ayla") as c:
        assert draft in [d["draft_id"] for d in c.get("/api/exports/drafts").json()]
        # the file changes between the command and the submission: refused, nothing recorded
        a.write("ayla", "d/fig.png", png_bytes(60, 40))
        r = c.post(f"/api/exports/drafts/{draft}")
        assert r.status_code == 400 and r.json()["detail"]["refused"][0]["file"] == "d/fig.png", r.text
        a.write("ayla", "d/fig.png", png_bytes(50, 40))
        r = c.post(f"/api/exports/drafts/{draft}")
        assert r.status_code == 201, r.text
        v = r.json()
        assert v["session_id"] == sid and "volume" in {x["code"] for f in v["files"] for x in f["findings"]}
        assert c.post(f"/api/exports/drafts/{draft}").status_code == 409
        assert draft not in [d["draft_id"] for d in c.get("/api/exports/drafts").json()]
        assert c.post("/api/exports/drafts/../../x").status_code in (400, 404)
        assert c.post("/api/exports/drafts/0123456789abcdef").status_code == 404
    with a.api("bram") as c:  # another researcher cannot submit ayla's draft (it is looked up in bram's home)
        assert c.post(f"/api/exports/drafts/{draft}").status_code == 404


def test_cli_through_the_api_when_a_route_exists(airlock_stack, tmp_path):
    """Where the workspace can reach the dataset service, the command is a thin wrapper over the API."""
    a = airlock_stack
    home = a.home("ayla")
    a.write("ayla", "api/loss.csv", b"epoch,loss\n1,0.5\n")
    out = run_cli(home, "api/loss.csv", "--justification", "training curve of the model",
                  "--api", a.st.base, env={"JUPYTERHUB_API_TOKEN": a.st.token("ayla")})
    assert out.returncode == 0, out.stderr
    assert "submitted" in out.stdout and hashlib.sha256(b"epoch,loss\n1,0.5\n").hexdigest() in out.stdout
    out = run_cli(home, "api/loss.csv", "--justification", "training curve of the model",
                  "--api", a.st.base, env={"JUPYTERHUB_API_TOKEN": a.st.token("dora")})
    assert out.returncode == 2 and "403" in out.stderr


def test_pages_need_a_login_and_forms_a_csrf_token(airlock_stack):
    import httpx

    a = airlock_stack
    st = a.st
    with httpx.Client(base_url=st.base, timeout=30) as c:
        r = c.get("/exports")
        assert r.status_code == 302 and "/login?next=" in r.headers["location"]
        assert c.post("/exports/new", data={"files": "x", "justification": "long enough text"}).status_code == 401
    cookie = {st.app.state.hub_auth.config.cookie_name: st.app.state.hub_auth.session_value(st.token("ayla"))}
    a.write("ayla", "csrf/ok.txt", b"ok")
    with httpx.Client(base_url=st.base, timeout=30, cookies=cookie) as c:
        page = c.get("/exports/new")
        assert page.status_code == 200 and "csrf/ok.txt" in page.text
        before = len(c.get("/api/exports", params={"mine": True}).json())
        for token in ("", "0" * 64):
            r = c.post("/exports/new", data={"files": "csrf/ok.txt", "justification": "long enough text",
                                             "csrf_token": token})
            assert r.status_code == 403
        assert len(c.get("/api/exports", params={"mine": True}).json()) == before
        # with the page's token it goes through; a bad name comes back as a 400 page with the reason
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = c.post("/exports/new", data={"files": "../etc/passwd", "justification": "long enough text",
                                         "csrf_token": token})
        assert r.status_code == 400 and "path components" in r.text
        r = c.post("/exports/new", data={"files": "csrf/ok.txt", "justification": "long enough text",
                                         "csrf_token": token})
        assert r.status_code == 303 and "/exports/" in r.headers["location"]
