"""A mock of the Guacamole web application's REST API (guacd and Guacamole
cannot run on the development machines). It serves a recorded contract
(tests/kube/contracts/guacamole-rest.json) over real HTTP on a loopback port:
each scenario is an ordered list of exchanges; every request must match the
next expected one exactly (method, path, query, content type, body), else the
mock answers 599 and records the mismatch."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CONTRACT = json.loads((Path(__file__).parent / "contracts" / "guacamole-rest.json").read_text())


def _matches(expected, got) -> bool:
    if expected == "<any>":
        return isinstance(got, str) and got != ""
    if isinstance(expected, dict):
        return isinstance(got, dict) and expected.keys() == got.keys() and all(_matches(expected[k], got[k]) for k in expected)
    if isinstance(expected, list):
        return isinstance(got, list) and len(expected) == len(got) and all(map(_matches, expected, got))
    return expected == got


class GuacamoleMock:
    def __init__(self, steps: list[str]):
        self.expected = [CONTRACT[s] for s in steps]
        self.names = list(steps)
        self.seen: list[dict] = []
        self.mismatches: list[str] = []
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _handle(self):
                parts = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                req = {"method": self.command, "path": parts.path,
                       "query": {k: v[0] for k, v in parse_qs(parts.query).items()}}
                if raw:
                    if ctype == "application/json":
                        req["json"] = json.loads(raw)
                    elif ctype == "application/x-www-form-urlencoded":
                        req["form"] = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    else:
                        req["raw"] = raw.decode(errors="replace")
                mock.seen.append(req)
                i = len(mock.seen) - 1
                if i >= len(mock.expected):
                    mock.mismatches.append(f"unexpected extra request {req}")
                    return self._send(599, {"message": "unexpected request"})
                exp = mock.expected[i]
                if not _matches(exp["request"], req):
                    mock.mismatches.append(f"step {i} ({mock.names[i]}): expected {exp['request']}, got {req}")
                    return self._send(599, {"message": "request does not match the contract"})
                resp = exp["response"]
                self._send(resp["status"], resp.get("json"))

            def _send(self, status, body):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/guacamole"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def assert_complete(self):
        assert self.mismatches == []
        assert len(self.seen) == len(self.expected), f"only {len(self.seen)} of {len(self.expected)} calls made"
