"""The gateway's way to the workspace's server (``hub/gateway.py``): a Unix socket whose listener must run as
the workspace's owner.

Kernel code can remove the server's socket and bind its own, so before a byte is sent the
connection is checked with ``SO_PEERCRED``: a socket held by another uid (another user's, root's)
is refused (``UpstreamRefused``). The HTTP client and the websocket connection both go through that
checked client. Imported by the gateway before it drops its privileges.
"""

from __future__ import annotations

import socket
import struct
from urllib.parse import urlparse

import tornado.simple_httpclient
from tornado import httpclient
from tornado.netutil import Resolver
from tornado.tcpclient import TCPClient
from tornado.websocket import WebSocketClientConnection

MAX_BODY = 1024 * 1024 * 1024


class UpstreamRefused(Exception):
    pass


def peer_uid(sock: socket.socket) -> int:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)[1]


class _UnixResolver(Resolver):
    def initialize(self, path: str) -> None:  # type: ignore[override]
        self.path = path

    async def resolve(self, host, port, family=socket.AF_UNSPEC):  # type: ignore[override]
        return [(socket.AF_UNIX, self.path)]


class PeerCheckedClient(TCPClient):
    """Connects to the server's Unix socket and refuses the connection, before
    anything is sent, unless the listening process runs as ``owner_uid``."""

    def __init__(self, path: str, owner_uid: int | None):
        super().__init__(resolver=_UnixResolver(path=path))
        self.owner_uid = owner_uid

    async def connect(self, *args, **kwargs):
        stream = await super().connect(*args, **kwargs)
        if self.owner_uid is not None:
            uid = peer_uid(stream.socket)
            if uid != self.owner_uid:
                stream.close()
                raise UpstreamRefused(f"the server socket is held by uid {uid}, not the workspace's")
        return stream


class Upstream:
    """The workspace's server: ``upstream`` (a Unix socket whose listener must run as ``owner_uid``) or,
    without it, ``upstream_url`` (Kubernetes: the server in the same pod, behind the pod's own uid rules)."""

    def __init__(self, upstream: str, upstream_url: str, owner_uid: int | None):
        self.upstream, self.owner_uid = upstream, owner_uid
        if upstream:
            self.origin = "http://workspace"
        else:
            u = urlparse(upstream_url)
            self.origin = f"{u.scheme}://{u.netloc}"

    def tcp_client(self) -> TCPClient:
        if self.upstream:
            return PeerCheckedClient(self.upstream, self.owner_uid)
        return TCPClient()

    def http_client(self) -> httpclient.AsyncHTTPClient:
        c = tornado.simple_httpclient.SimpleAsyncHTTPClient(force_instance=True, max_body_size=MAX_BODY,
                                                           max_buffer_size=MAX_BODY)
        c.tcp_client = self.tcp_client()
        return c


class UpstreamWebSocket(WebSocketClientConnection):
    def __init__(self, request, tcp_client: TCPClient, **kw):
        super().__init__(request, **kw)
        # the connection coroutine has not run yet: it uses this client
        self.tcp_client = tcp_client
