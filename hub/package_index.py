"""The curated package index, served to one workspace over a Unix socket.

Why this shape: a workspace's network namespace has loopback only, so nothing
from outside can be installed, and the platform must still let a researcher add
packages. The operator curates a folder of wheels (and sdists), ``wheel_dir``
(``c.LocalSandboxSpawner.package_index_dir``; fill it with ``pip download`` on a
connected machine after review). For each workspace the hub serves that folder
as a PEP 503 "simple" index on a Unix socket in the workspace's runtime folder,
bound read-only into the sandbox at ``/run/insitu-index/index.sock``; inside,
the workspace's server extension relays ``127.0.0.1:3141`` to that socket
(``hub/workspace/pkgrelay.py``; pip does not speak Unix sockets) and pip's
``PIP_INDEX_URL`` points there. The index runs in the hub, outside the
researcher's reach, so every file handed out is recorded here with the user,
package and version (the hub log and ``audit_path``, one JSON line each),
whatever the researcher does inside the workspace.

Only ``GET``/``HEAD`` of ``/simple/``, ``/simple/<project>/`` and
``/files/<file>`` are answered; nothing outside ``wheel_dir`` is ever read
(file names are matched against the folder's listing, not joined as paths).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import logging
import os
import re
from pathlib import Path
from urllib.parse import unquote

from insitu.clock import utcnow

SOCKET_NAME = "index.sock"
INDEX_IN_SANDBOX = "/run/insitu-index"
_SUFFIXES = (".whl", ".tar.gz", ".zip")


def normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_filename(filename: str) -> tuple[str, str] | None:
    """(normalised project, version) of a wheel or sdist file name; None for anything else."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return (normalize(parts[0]), parts[1]) if len(parts) >= 5 else None
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            m = re.match(r"^(.+)-([0-9][^-]*)$", filename[: -len(suffix)])
            return (normalize(m.group(1)), m.group(2)) if m else None
    return None


def catalogue(wheel_dir: str | os.PathLike) -> dict[str, dict[str, str]]:
    """{project: {file name: version}} of the curated folder."""
    out: dict[str, dict[str, str]] = {}
    d = Path(wheel_dir)
    if not d.is_dir():
        return out
    for p in sorted(d.iterdir()):
        if p.is_file() and not p.is_symlink() and p.name.endswith(_SUFFIXES):
            pv = parse_filename(p.name)
            if pv:
                out.setdefault(pv[0], {})[p.name] = pv[1]
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def page(title: str, links: list[tuple[str, str]]) -> bytes:
    body = "".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a><br>\n' for href, text in links)
    return (f"<!DOCTYPE html><html><head><meta name=\"pypi:repository-version\" content=\"1.0\">"
            f"<title>{html.escape(title)}</title></head><body>\n{body}</body></html>\n").encode()


class PackageIndex:
    """A PEP 503 index of ``wheel_dir`` on the Unix socket ``listen_path``, for ``user``."""

    def __init__(self, wheel_dir: str, listen_path: str, user: str, *, audit_path: str | None = None,
                 log: logging.Logger | None = None):
        self.wheel_dir = Path(wheel_dir)
        self.listen_path = listen_path
        self.user = user
        self.audit_path = audit_path
        self.log = log or logging.getLogger("insitu.package_index")
        self.server: asyncio.AbstractServer | None = None
        self._digests: dict[tuple[str, float, int], str] = {}

    async def start(self) -> None:
        if os.path.lexists(self.listen_path):
            os.unlink(self.listen_path)
        self.server = await asyncio.start_unix_server(self._handle, path=self.listen_path)
        os.chmod(self.listen_path, 0o666)  # its folder is bound into this one workspace only

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            os.unlink(self.listen_path)
        except FileNotFoundError:
            pass

    def _digest(self, p: Path) -> str:
        st = p.stat()
        key = (p.name, st.st_mtime, st.st_size)
        if key not in self._digests:
            self._digests[key] = _sha256(p)
        return self._digests[key]

    def answer(self, method: str, path: str) -> tuple[int, str, bytes | Path]:
        """(status, content type, body or file) for one request. Pure but for reading the folder."""
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n"
        path = unquote(path.split("?", 1)[0])
        cat = catalogue(self.wheel_dir)
        if path in ("/simple", "/simple/"):
            return 200, "text/html", page("curated packages", [(f"/simple/{p}/", p) for p in sorted(cat)])
        m = re.fullmatch(r"/simple/([^/]+)/?", path)
        if m:
            files = cat.get(normalize(m.group(1)))
            if not files:
                return 404, "text/plain", b"not in the curated index\n"
            links = [(f"/files/{f}#sha256={self._digest(self.wheel_dir / f)}", f) for f in sorted(files)]
            return 200, "text/html", page(f"links for {m.group(1)}", links)
        m = re.fullmatch(r"/files/([^/]+)", path)
        if m:
            name = m.group(1)
            for files in cat.values():
                if name in files:
                    return 200, "application/octet-stream", self.wheel_dir / name
        return 404, "text/plain", b"not found\n"

    def record(self, filename: str) -> dict:
        project, version = parse_filename(filename) or (filename, "")
        rec = {"time": utcnow().isoformat(timespec="seconds"), "event": "package_install",
               "user": self.user, "package": project, "version": version, "file": filename}
        self.log.info("package index: %s downloads %s %s", self.user, project, version)
        if self.audit_path:
            with open(self.audit_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")
        return rec

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: pip sends several requests on one connection
                line = await asyncio.wait_for(reader.readline(), 30)
                if not line:
                    break
                parts = line.decode("latin-1").split()
                while await asyncio.wait_for(reader.readline(), 30) not in (b"\r\n", b"\n", b""):
                    pass
                if len(parts) != 3:
                    break
                method, path = parts[0], parts[1]
                status, ctype, body = self.answer(method, path)
                reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[status]
                size = body.stat().st_size if isinstance(body, Path) else len(body)
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                             f"Content-Length: {size}\r\nCache-Control: no-store\r\n\r\n".encode())
                if method == "GET":
                    if isinstance(body, Path):
                        self.record(body.name)
                        with open(body, "rb") as f:
                            while block := f.read(1 << 16):
                                writer.write(block)
                                await writer.drain()
                    else:
                        writer.write(body)
                await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


# --------------------------------------------------------------------------
# the spawner's side
# --------------------------------------------------------------------------

from traitlets import HasTraits, Unicode  # noqa: E402


class PackageIndexMixin(HasTraits):
    """Adds the curated package index to a local sandbox spawner (one index per running workspace)."""

    package_index_dir = Unicode(
        "", config=True,
        help="Folder of operator-curated wheels and sdists served to workspaces as their only package index "
             "(pip install inside a workspace). Empty: no index; pip finds nothing.",
    )
    package_index_audit = Unicode(
        "", config=True,
        help="JSON-lines file where every package file handed to a workspace is recorded (user, package, "
             "version); the hub log records them too.",
    )
    _package_index: PackageIndex | None = None

    async def start_package_index(self) -> None:
        runtime_dir = getattr(self, "runtime_dir", None)
        if not (self.package_index_dir and runtime_dir) or self._package_index is not None:
            return
        folder = os.path.join(runtime_dir, "index")
        os.makedirs(folder, mode=0o755, exist_ok=True)  # in the root-owned runtime folder
        index = PackageIndex(os.path.abspath(self.package_index_dir), os.path.join(folder, SOCKET_NAME),
                             self.user.name, audit_path=self.package_index_audit or None, log=self.log)
        await index.start()
        self._package_index = index

    async def resume_package_index(self) -> None:
        """After a hub restart (the workspace kept running, the hub's index went with the old process):
        serve the index again on the same socket, for a workspace started with one (its folder is bound)."""
        runtime_dir = getattr(self, "runtime_dir", None)
        if runtime_dir and os.path.isdir(os.path.join(runtime_dir, "index")):
            await self.start_package_index()

    def package_index_binds(self) -> tuple[tuple[str, str], ...]:
        runtime_dir = getattr(self, "runtime_dir", None)
        if self._package_index is None or not runtime_dir:
            return ()
        return ((os.path.join(runtime_dir, "index"), INDEX_IN_SANDBOX),)

    async def stop_package_index(self) -> None:
        if self._package_index is not None:
            await self._package_index.stop()
            self._package_index = None
