"""The hub side of a workspace's ``hub.sock``: an HTTP filter in front of the hub's API.

A workspace's network namespace has loopback only; its one way out is
``hub.sock``, served by :class:`UnixForwarder` in the hub process. The
forwarder reads each request (``h11``), lets through only what the
single-user server of *this* workspace's user needs from the hub, and answers
``403`` with a plain reason to everything else: the login page, other users,
token creation, the admin API, services (issue 11, item 7).

Allowed (``allowed_routes``; ``U`` is the workspace's user, as the hub escapes it):

* ``GET  <prefix>api`` and ``<prefix>api/``: the version check at start;
* ``GET  <prefix>api/user``: who a token belongs to (HubAuth);
* ``POST <prefix>api/users/U/activity``: activity reports;
* ``POST <prefix>api/oauth2/token``: the OAuth code-for-token exchange of the
  server's login.

The path must match exactly (no normalisation, no percent-decoding: a path
written another way is refused). One request per connection: the request is
sent upstream with ``Connection: close`` and a ``Content-Length`` computed here,
so nothing the workspace pipelines behind it reaches the hub. Bodies above
``max_body`` bytes are refused (413).

The socket lives in a root-owned folder (``hub/fsops.py`` rules): binding,
``chmod`` and ``chown`` happen relative to a descriptor of that folder, and
never inside a folder the researcher can write.
"""

from __future__ import annotations

import asyncio
import os
import re
from urllib.parse import quote, unquote, urlparse

import h11

from hub.fsops import open_trusted_dir, remove_at

__all__ = ["UnixForwarder", "allowed_routes", "is_allowed"]

_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"upgrade", b"proxy-connection", b"te"}


def allowed_routes(user: str, hub_prefix: str = "/hub/") -> list[tuple[str, re.Pattern]]:
    """(method, exact path regex) pairs the workspace of ``user`` may call."""
    p = re.escape("/" + hub_prefix.strip("/") + "/") if hub_prefix.strip("/") else "/"
    u = re.escape(quote(user, safe="@~"))  # as JupyterHub escapes a user name
    u2 = re.escape(user)
    return [
        ("GET", re.compile(rf"{p}api/?")),
        ("GET", re.compile(rf"{p}api/user")),
        ("POST", re.compile(rf"{p}api/users/(?:{u}|{u2})/activity")),
        ("POST", re.compile(rf"{p}api/oauth2/token")),
    ]


def is_allowed(method: str, target: str, routes: list[tuple[str, re.Pattern]]) -> bool:
    """True when ``method target`` (the raw request target) matches a route exactly."""
    path = target.split("?", 1)[0]
    if not path.startswith("/") or "\\" in path:
        return False
    return any(method == m and rx.fullmatch(path) for m, rx in routes)


class UnixForwarder:
    """Listens on ``<folder>/<name>`` (a root-owned folder) and passes the allowed
    hub-API requests of one workspace's user to the hub at ``target_url``."""

    max_head = 64 * 1024

    def __init__(
        self,
        listen_path: str,
        target_url: str,
        *,
        user: str,
        hub_prefix: str = "/hub/",
        mode: int = 0o600,
        owner: tuple[int, int] | None = None,
        max_body: int = 1024 * 1024,
        log=None,
    ):
        self.listen_path = listen_path
        self.folder, self.name = os.path.split(listen_path)
        u = urlparse(target_url)
        self.target_unix = None
        if u.scheme in ("http+unix", "unix+http"):
            self.target_unix = unquote(u.netloc)
        else:
            self.target = (u.hostname or "127.0.0.1", u.port or 80)
        self.routes = allowed_routes(user, hub_prefix)
        self.mode = mode
        self.owner = owner
        self.max_body = max_body
        self.log = log
        self.refused = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        dfd = open_trusted_dir(self.folder)  # root-owned all the way: nobody else can swap a path in it
        try:
            remove_at(dfd, self.name)
            self.server = await asyncio.start_unix_server(self._handle, path=f"/proc/self/fd/{dfd}/{self.name}")
            if self.owner:
                os.chown(self.name, *self.owner, dir_fd=dfd, follow_symlinks=False)
            os.chmod(self.name, self.mode, dir_fd=dfd)
        finally:
            os.close(dfd)

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.is_serving()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            dfd = open_trusted_dir(self.folder)
        except OSError:
            return
        try:
            remove_at(dfd, self.name)
        finally:
            os.close(dfd)

    # ------------------------------------------------------------------
    async def _read_request(self, reader: asyncio.StreamReader):
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        request, body = None, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and request is None:
                    return None, b"", 0
                continue
            if isinstance(event, h11.Request):
                request = event
                if not is_allowed(event.method.decode("ascii", "replace"), event.target.decode("latin-1"), self.routes):
                    return request, b"", 403
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_body:
                    return request, b"", 413
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body), 0
            elif isinstance(event, h11.ConnectionClosed):
                return request, b"", 400

    async def _answer(self, writer: asyncio.StreamWriter, status: int, reason: str) -> None:
        text = f"{status} {reason}\n".encode()
        head = (f"HTTP/1.1 {status} {'Forbidden' if status == 403 else 'Refused'}\r\n"
                f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(text)}\r\n"
                "Connection: close\r\n\r\n").encode()
        writer.write(head + text)
        try:
            await writer.drain()
        except ConnectionError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request, body, refuse = await self._read_request(reader)
            except h11.RemoteProtocolError:
                await self._answer(writer, 400, "malformed request")
                return
            if request is None:
                return
            if refuse:
                self.refused += 1
                if self.log:
                    self.log.warning("hub.sock refused %s %s", request.method.decode(errors="replace"),
                                     request.target.decode("latin-1")[:200])
                reason = {403: "a workspace may call only its own server's hub API routes",
                          413: "request body too large"}.get(refuse, "bad request")
                await self._answer(writer, refuse, reason)
                return
            head = [request.method + b" " + request.target + b" HTTP/1.1"]
            head += [k + b": " + v for k, v in request.headers if k.lower() not in _HOP]
            head += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
            try:
                if self.target_unix:
                    r2, w2 = await asyncio.open_unix_connection(self.target_unix)
                else:
                    r2, w2 = await asyncio.open_connection(*self.target)
            except OSError:
                await self._answer(writer, 502, "the hub cannot be reached")
                return
            try:
                w2.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
                await w2.drain()
                while data := await r2.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                w2.close()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass
