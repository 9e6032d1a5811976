"""hub.sock's HTTP filter (hub/forwarder.py) in front of a recording HTTP server.

The forwarder runs for real on a Unix socket in a root-owned folder; the
upstream is a small asyncio HTTP server that records every request it gets.
The same checks from inside a real workspace are in test_isolation_attacks.py.
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from hub.forwarder import UnixForwarder, allowed_routes, is_allowed
from hub.fsops import UnsafePath


def test_routes_are_exact():
    routes = allowed_routes("alice", "/hub/")
    ok = [("GET", "/hub/api"), ("GET", "/hub/api/"), ("GET", "/hub/api/user"), ("GET", "/hub/api/user?x=1"),
          ("POST", "/hub/api/users/alice/activity"), ("POST", "/hub/api/oauth2/token")]
    bad = [("POST", "/hub/login"), ("GET", "/hub/login"), ("GET", "/hub/api/users"), ("GET", "/hub/api/users/alice"),
           ("POST", "/hub/api/users/bob/activity"), ("POST", "/hub/api/users/alice/tokens"),
           ("GET", "/hub/api/oauth2/token"), ("POST", "/hub/api/user"), ("GET", "/hub/api/%75ser"),
           ("GET", "/hub/api/user/../users"), ("GET", "//hub/api/user"), ("GET", "/hub/api/users/alice/activity"),
           ("GET", "http://evil/hub/api/user"), ("GET", "/hub/admin"), ("GET", "/services/dataset-service/api/x")]
    for m, t in ok:
        assert is_allowed(m, t, routes), (m, t)
    for m, t in bad:
        assert not is_allowed(m, t, routes), (m, t)
    assert is_allowed("POST", "/hub/api/users/a%20b@c.d/activity", allowed_routes("a b@c.d"))


class Upstream:
    def __init__(self):
        self.requests: list[bytes] = []

    async def handle(self, reader, writer):
        data = await reader.read(65536)
        self.requests.append(data)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()


def raw(path, payload: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(payload)
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="the forwarder's folder must belong to root")
def test_filter_passes_one_allowed_request_and_refuses_the_rest(tmp_path):
    folder = tmp_path / "hub"
    folder.mkdir(mode=0o755)
    (folder / "hub.sock").write_text("stale")  # replaced, not followed

    async def main():
        up = Upstream()
        server = await asyncio.start_server(up.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        fw = UnixForwarder(str(folder / "hub.sock"), f"http://127.0.0.1:{port}", user="alice",
                           owner=(231234, -1), max_body=1000)
        await fw.start()
        st = os.lstat(folder / "hub.sock")
        assert st.st_uid == 231234 and st.st_mode & 0o777 == 0o600
        p = str(folder / "hub.sock")
        loop = asyncio.get_running_loop()

        def call(payload):
            return loop.run_in_executor(None, raw, p, payload)

        login = await call(b"POST /hub/login HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nusername=")
        assert login.startswith(b"HTTP/1.1 403") and b"only its own server" in login
        ok = await call(b"GET /hub/api/user HTTP/1.1\r\nHost: h\r\nAuthorization: token t\r\nConnection: keep-alive\r\n\r\n"
                        b"POST /hub/login HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")  # pipelined behind
        assert ok.startswith(b"HTTP/1.1 200") and ok.endswith(b"ok")
        big = await call(b"POST /hub/api/oauth2/token HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
        assert big.startswith(b"HTTP/1.1 413")
        chunked = await call(b"POST /hub/api/users/alice/activity HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"2\r\n{}\r\n0\r\n\r\n")
        assert chunked.startswith(b"HTTP/1.1 200")
        garbage = await call(b"\x16\x03\x01 not http\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400")
        await fw.stop()
        server.close()
        assert not os.path.lexists(folder / "hub.sock")
        return up.requests, fw.refused

    requests, refused = asyncio.run(main())
    assert refused == 2
    assert len(requests) == 2  # the allowed GET and the chunked activity report; nothing else reached the hub
    first = requests[0].split(b"\r\n\r\n")[0].lower()
    assert first.startswith(b"get /hub/api/user http/1.1") and b"connection: close" in first
    assert b"login" not in b"".join(requests)
    assert requests[1].endswith(b"\r\n\r\n{}") and b"content-length: 2" in requests[1].lower()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_forwarder_refuses_a_folder_the_researcher_can_write(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    os.chown(folder, 231234, 100)
    fw = UnixForwarder(str(folder / "hub.sock"), "http://127.0.0.1:1", user="alice")
    with pytest.raises(UnsafePath):
        asyncio.run(fw.start())
    assert not os.path.lexists(folder / "hub.sock")
