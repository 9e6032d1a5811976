"""The gateway's exports-panel route when the airlock answers badly or not at all (``hub/gateway_exports.py``).

The route itself, with the real hub, proxy, sandbox, gateway and airlock, is walked by the export
journey (``tests/journeys/test_journey_export.py``, per-user origins). Here: what the gateway makes
of each answer it may get, from a server on loopback that answers as told (the airlock's own answers
are tested in ``tests/airlock/test_airlock_export_states.py``), and that the owner and project
come from the gateway's configuration, never from the caller.
"""
from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hub.gateway import GatewayConfig
from hub.gateway_exports import FIELDS, owner_states, pick, states_url

ROWS = [
    {"request_id": "r1", "draft_id": "d1", "project": "lung", "state": "pending", "approvals": 0, "quorum": 1,
     "decided_at": None},
    {"request_id": "r2", "draft_id": None, "project": "brain", "state": "approved", "approvals": 1, "quorum": 1,
     "decided_at": "2026-12-05T10:00:00+00:00"},
]


class Airlock(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, json.dumps(ROWS).encode())
    seen: list[tuple[str, str]] = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append((self.path, self.headers.get("Authorization", "")))
        code, body = type(self).answer
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def airlock():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Airlock)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Airlock.seen = []
    yield server, f"http://127.0.0.1:{server.server_address[1]}/services/dataset-service"
    server.shutdown()
    server.server_close()


def cfg(report_url: str, project: str = "lung", token: str = "hub-service-token") -> GatewayConfig:
    return GatewayConfig(user="alice", base_url="/user/alice/", api_url="", api_token="", client_id="",
                         oauth_redirect_uri="", report_url=report_url, report_token=token, project=project)


def test_the_owners_states_of_the_project_and_only_the_panels_fields(airlock):
    _, url = airlock
    code, body = asyncio.run(owner_states(cfg(url)))
    assert code == 200 and body == {"requests": [{k: ROWS[0][k] for k in FIELDS}]}
    assert "project" not in body["requests"][0]
    (path, auth), = Airlock.seen
    assert path == "/services/dataset-service/api/users/alice/exports?project=lung"
    assert auth == "token hub-service-token"
    code, body = asyncio.run(owner_states(cfg(url, project="")))  # no project known: every request of the owner
    assert code == 200 and [r["request_id"] for r in body["requests"]] == ["r1", "r2"]


def test_names_are_quoted_into_the_path():
    assert states_url("http://ds/p/", "a/../b?x", "lung&x=1") == "http://ds/p/api/users/a%2F..%2Fb%3Fx/exports?project=lung%26x%3D1"


@pytest.mark.parametrize("answer,code", [
    ((403, b'{"detail": "only the platform service"}'), 502),  # a token the airlock does not take
    ((500, b"oops"), 502),
    ((200, b"not json"), 502),
    ((200, b'{"requests": []}'), 502),  # not the airlock's list
    ((200, b'[{"state": "pending"}]'), 502),  # rows without an id
])
def test_a_bad_answer_is_a_502_with_a_reason(airlock, monkeypatch, answer, code):
    _, url = airlock
    monkeypatch.setattr(Airlock, "answer", answer)
    got, body = asyncio.run(owner_states(cfg(url)))
    assert got == code and body["reason"].startswith("the export airlock") and "requests" not in body


def test_no_airlock_is_a_503_with_a_reason(airlock):
    server, url = airlock
    server.shutdown()
    server.server_close()  # nothing listens there any more
    code, body = asyncio.run(owner_states(cfg(url)))
    assert code == 503 and body == {"reason": "the export airlock cannot be reached"}
    code, body = asyncio.run(owner_states(cfg("", token="")))
    assert code == 503 and "not configured" in body["reason"]


def test_pick_refuses_what_is_not_a_list_of_requests():
    assert pick({"a": 1}) is None and pick([1]) is None and pick([{"request_id": 3}]) is None
    assert pick([]) == []


@pytest.mark.parametrize("hub_host", ["http://localhost:8000", "https://hub.example.org", "http://localhost"])
def test_the_panels_links_go_to_the_airlocks_own_origin(hub_host):
    """The exports panel's links (``hub/workspace/labapi.py``): with per-service origins the airlock's pages are
    where JupyterHub routes the service (its own subdomain rule), else a path on the hub's origin."""
    from urllib.parse import urlparse

    from jupyterhub.utils import subdomain_hook_idna

    from hub.workspace.labapi import SERVICE_NAME, airlock_base

    u = urlparse(hub_host)
    origin = f"{u.scheme}://{subdomain_hook_idna(SERVICE_NAME, u.hostname, 'service')}" + (f":{u.port}" if u.port else "")
    assert airlock_base(hub_host) == origin + "/services/dataset-service"
    assert airlock_base("") == "/services/dataset-service"
