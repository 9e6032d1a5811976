"""Ask for files to leave the workspace through the export airlock.

    insitu-export results/fig1.png results/metrics.csv \\
        --justification "Figure 1 and the metrics table of the paper"

(``insitu-export`` is on the workspace's PATH; outside a workspace the same
command is ``python -m hub.workspace.export``.)

Runs inside the workspace (standard library only). The workspace's network
namespace has loopback only, and its one way out, ``/run/insitu/hub.sock``,
reaches the hub's API, not the dataset service. So by default the command
writes an export *draft* into the home, ``~/.insitu/exports/<id>.json``
(format ``insitu-export-draft/1``: the files named relative to the home, each
with its size and SHA-256 at this moment, the justification and the workspace
session), and prints the dataset service page where the researcher submits it
(``/services/dataset-service/exports/new?draft=<id>``, logged in through the
hub in the browser). On submission the dataset service copies the files out of
the home into its frozen store and refuses any file whose digest differs from
the draft: what is reviewed is exactly what was named here.

Where a route to the dataset service exists (``--api URL`` or
``INSITU_EXPORT_API``, ``http://…`` or ``http+unix://<socket, URL-encoded>/prefix``,
e.g. on Kubernetes with an egress rule to the service), the command is a thin
wrapper over the same API: ``POST /api/exports`` with the workspace's hub token
(``JUPYTERHUB_API_TOKEN``), and the files are frozen at once.

Refused here already (the service checks again): files outside the home,
symlinks anywhere in the path, anything but regular files.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import secrets
import socket
import stat
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

FORMAT = "insitu-export-draft/1"
DRAFT_DIR = ".insitu/exports"
SERVICE_PREFIX = "/services/dataset-service"


class ExportError(Exception):
    pass


def home_dir() -> Path:
    return Path(os.environ.get("HOME") or os.path.expanduser("~")).absolute()


def name_in_home(path: str, home: Path, cwd: Path | None = None) -> str:
    """The file's name relative to the home; refuses symlinks and anything outside."""
    p = Path(path)
    if not p.is_absolute():
        p = (cwd or Path.cwd()) / p
    parts = []
    for part in p.parts[1:]:
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    norm = Path("/", *parts)
    try:
        rel = norm.relative_to(home)
    except ValueError:
        raise ExportError(f"{path}: only files in your home folder ({home}) can be exported")
    if not rel.parts:
        raise ExportError(f"{path}: name a file, not the home folder")
    cur = home
    for i, part in enumerate(rel.parts):
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            raise ExportError(f"{path}: no such file")
        if stat.S_ISLNK(st.st_mode):
            raise ExportError(f"{path}: {cur} is a symlink; name the file itself")
        if i == len(rel.parts) - 1 and not stat.S_ISREG(st.st_mode):
            raise ExportError(f"{path}: not a regular file")
    return "/".join(rel.parts)


def digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def write_draft(home: Path, names: list[str], justification: str, session_id: str | None) -> dict:
    files = []
    for n in names:
        sha, size = digest(home / n)
        files.append({"name": n, "sha256": sha, "size": size})
    draft = {
        "format": FORMAT,
        "id": secrets.token_hex(8),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "session_id": session_id,
        "justification": justification,
        "files": files,
    }
    folder = home / DRAFT_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = folder / f".{draft['id']}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(draft, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, folder / f"{draft['id']}.json")
    return draft


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def post_api(api: str, token: str, body: dict) -> tuple[int, dict]:
    u = urlparse(api)
    if u.scheme in ("http+unix", "unix+http"):
        conn: http.client.HTTPConnection = _UnixConnection(unquote(u.netloc))
    elif u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=60)
    elif u.scheme == "http":
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
    else:
        raise ExportError(f"unsupported API URL {api!r}")
    path = (u.path or "").rstrip("/") + "/api/exports"
    conn.request("POST", path, body=json.dumps(body), headers={
        "Authorization": f"token {token}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    try:
        return resp.status, json.loads(data or b"{}")
    except ValueError:
        return resp.status, {"detail": data.decode(errors="replace")[:500]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="insitu-export",
                                 description="Ask for files of your home to be exported (reviewed before release).")
    ap.add_argument("files", nargs="+", help="files in your home folder")
    ap.add_argument("--justification", "-j", required=True, help="what the files are and why they must leave")
    ap.add_argument("--session", default=os.environ.get("INSITU_SESSION_ID"),
                    help="workspace session the files come from (default: $INSITU_SESSION_ID)")
    ap.add_argument("--api", default=os.environ.get("INSITU_EXPORT_API"),
                    help="dataset service URL (http://… or http+unix://…) to submit directly; "
                         "default: write a draft to confirm in the browser")
    ap.add_argument("--public-url", default=os.environ.get("INSITU_PUBLIC_URL", ""),
                    help="browser-facing origin of the hub, for the printed link")
    args = ap.parse_args(argv)
    home = home_dir()
    try:
        if len(args.justification.strip()) < 10:
            raise ExportError("explain in the justification (10 characters or more) what the files are")
        names = []
        for f in args.files:
            n = name_in_home(f, home)
            if n in names:
                raise ExportError(f"{f}: named twice")
            names.append(n)
        if args.api:
            token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
            body = {"files": names, "justification": args.justification}
            if args.session:
                body["session_id"] = args.session
            status, answer = post_api(args.api, token, body)
            if status != 201:
                raise ExportError(f"the dataset service refused the request ({status}): {answer.get('detail')}")
            print(f"export request {answer['request_id']} submitted: {len(answer['files'])} files frozen for review")
            for f in answer["files"]:
                print(f"  {f['sha256']}  {f['size']:>12}  {f['name']}")
            return 0
        draft = write_draft(home, names, args.justification.strip(), args.session)
    except ExportError as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    url = f"{args.public_url.rstrip('/')}{SERVICE_PREFIX}/exports/new?draft={draft['id']}"
    print(f"export draft {draft['id']} written to ~/{DRAFT_DIR}/{draft['id']}.json:")
    for f in draft["files"]:
        print(f"  {f['sha256']}  {f['size']:>12}  {f['name']}")
    print(f"submit it for review at {url}")
    print("the files are copied out when you submit; a file changed before then is refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
