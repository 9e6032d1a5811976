"""A mock of the Keycloak admin REST API, driven by ``keycloak-admin.json``.

Keycloak cannot run here. This HTTP server answers only the requests of the
recorded contract (method, path, query parameters, form, credentials), in the
recorded representations, from a realm state that tests change (remove a
member, disable a user). Every request outside the contract is answered
``400 {"error": "not in the recorded contract"}`` and kept in ``violations``,
which tests assert to be empty.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

CONTRACT_PATH = Path(__file__).with_name("keycloak-admin.json")


def load_contract() -> dict:
    return json.loads(CONTRACT_PATH.read_text())


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


@dataclass
class Group:
    name: str
    path: str
    id: str
    parent_id: str | None
    members: list[str]
    children: list["Group"] = field(default_factory=list)


class Realm:
    """Users and groups of a realm, from the contract's ``recorded_realm``."""

    def __init__(self, recorded: dict, realm: str):
        self.users = {n: dict(v, id=_uid(realm, "user", n)) for n, v in recorded["users"].items()}
        self.groups = [self._group(g, "", None, realm) for g in recorded["groups"]]

    def _group(self, g: dict, parent_path: str, parent_id: str | None, realm: str) -> Group:
        path = f"{parent_path}/{g['name']}"
        gid = _uid(realm, "group", path)
        grp = Group(g["name"], path, gid, parent_id, list(g.get("members", [])))
        grp.children = [self._group(c, path, gid, realm) for c in g.get("children", [])]
        return grp

    def all_groups(self):
        stack = list(self.groups)
        while stack:
            g = stack.pop(0)
            yield g
            stack.extend(g.children)

    def find(self, gid: str) -> Group | None:
        return next((g for g in self.all_groups() if g.id == gid), None)

    def by_name(self, name: str) -> Group:
        return next(g for g in self.all_groups() if g.name == name)

    # changes made by tests (as an administrator would in the Keycloak console)
    def remove_member(self, group: str, user: str) -> None:
        self.by_name(group).members.remove(user)

    def disable(self, user: str) -> None:
        self.users[user]["enabled"] = False

    def delete_user(self, user: str) -> None:
        del self.users[user]
        for g in self.all_groups():
            if user in g.members:
                g.members.remove(user)


_ACCESS_GROUP = {"view": True, "viewMembers": True, "manageMembers": False, "manage": False,
                 "manageMembership": False}
_ACCESS_USER = {"manageGroupMembership": False, "view": True, "mapRoles": False, "impersonate": False,
                "manage": False}


def group_rep(g: Group) -> dict:
    rep = {"id": g.id, "name": g.name, "path": g.path}
    if g.parent_id:
        rep["parentId"] = g.parent_id
    rep.update({"subGroupCount": len(g.children), "subGroups": [], "access": dict(_ACCESS_GROUP)})
    return rep


def user_rep(name: str, u: dict) -> dict:
    return {
        "id": u["id"], "username": name, "firstName": u.get("firstName", ""), "lastName": u.get("lastName", ""),
        "email": u.get("email", ""), "emailVerified": True, "createdTimestamp": 1700000000000,
        "enabled": bool(u.get("enabled", True)), "totp": False, "disableableCredentialTypes": [],
        "requiredActions": [], "notBefore": 0, "access": dict(_ACCESS_USER),
    }


class KeycloakAdminMock:
    """Start with ``with KeycloakAdminMock() as kc: kc.url ...``."""

    def __init__(self, contract: dict | None = None, token_lifetime: int | None = None):
        self.contract = contract or load_contract()
        self.realm_name = self.contract["realm"]
        self.client = self.contract["client"]
        self.realm = Realm(self.contract["recorded_realm"], self.realm_name)
        self.tokens: dict[str, float] = {}
        self.token_lifetime = token_lifetime or self.contract["endpoints"][0]["response"]["example"]["expires_in"]
        self.requests: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self.lock = threading.Lock()
        self._routes = []
        for ep in self.contract["endpoints"]:
            pattern = re.escape(ep["path"].replace("{realm}", self.realm_name)).replace(r"\{id\}", "([0-9a-f-]{36})")
            self._routes.append((ep, re.compile("^" + pattern + "$")))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------
    def _answer(self, method: str, raw_path: str, headers, body: bytes) -> tuple[int, object]:
        u = urlparse(raw_path)
        query = parse_qs(u.query, keep_blank_values=True)
        for ep, rx in self._routes:
            m = rx.match(u.path)
            if not m or ep["method"] != method:
                continue
            extra = set(query) - set(ep.get("query", []))
            if extra:
                return self._violation(f"{method} {u.path}: query parameters {sorted(extra)} not in the contract")
            if ep["auth"] == "client":
                return self._token(ep, headers, body)
            auth = headers.get("Authorization", "")
            tok = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            with self.lock:
                exp = self.tokens.get(tok)
            if not exp or exp < time.time():
                return 401, self.contract["errors"]["unauthorized"]["example"]
            return self._admin(ep, m.groups(), query)
        return self._violation(f"{method} {u.path}: not in the recorded contract")

    def _violation(self, what: str) -> tuple[int, object]:
        with self.lock:
            self.violations.append(what)
        return 400, {"error": "not in the recorded contract", "error_description": what}

    def _token(self, ep, headers, body) -> tuple[int, object]:
        if not headers.get("Content-Type", "").startswith(ep["content_type"]):
            return self._violation(f"token: content type {headers.get('Content-Type')!r}")
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        want = {k: v.format(**self.client) for k, v in ep["form"].items()}
        unknown = set(form) - set(want) - set(ep.get("optional_form", []))
        if unknown:
            return self._violation(f"token: form fields {sorted(unknown)} not in the contract")
        if form.get("grant_type") != want["grant_type"]:
            return self._violation(f"token: grant_type {form.get('grant_type')!r}")
        if form.get("client_id") != want["client_id"] or form.get("client_secret") != want["client_secret"]:
            return 401, self.contract["errors"]["invalid_client"]["example"]
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.time() + self.token_lifetime
        rep = dict(ep["response"]["example"], access_token=token, expires_in=self.token_lifetime)
        return 200, rep

    @staticmethod
    def _page(items: list, query: dict) -> list:
        first = int(query.get("first", ["0"])[0])
        mx = int(query.get("max", ["100"])[0])
        return items[first:first + mx]

    def _admin(self, ep, ids, query) -> tuple[int, object]:
        with self.lock:
            if ep["name"] == "top-level groups":
                return 200, self._page([group_rep(g) for g in self.realm.groups], query)
            g = self.realm.find(ids[0])
            if g is None:
                return 404, self.contract["errors"]["group_not_found"]["example"]
            if ep["name"] == "group children":
                return 200, self._page([group_rep(c) for c in g.children], query)
            if ep["name"] == "group members":
                reps = [user_rep(n, self.realm.users[n]) for n in g.members if n in self.realm.users]
                return 200, self._page(reps, query)
        return self._violation(f"unhandled endpoint {ep['name']}")

    def _handler(self):
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def _do(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with mock.lock:
                    mock.requests.append((self.command, self.path))
                status, payload = mock._answer(self.command, self.path, self.headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _do

            def log_message(self, *a):
                pass

        return Handler
