"""The JupyterHub REST calls the hub's reconcilers make (async, httpx), and which servers a revocation stops.

Used by the revocation reconciler (``hub.reconciler``) and the Keycloak membership sync (``hub.keycloak_sync``).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx


class HubAPIError(Exception):
    """The hub answered with an error or could not be reached."""


class HubAPI:
    """The few JupyterHub REST calls the reconcilers need (async, httpx)."""

    def __init__(self, api_url: str, token: str, *, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._transport = transport

    async def request(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"token {self.token}"}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self._transport) as c:
                return await c.request(method, self.api_url + path, headers=headers, **kw)
        except httpx.HTTPError as e:
            raise HubAPIError(f"hub unreachable: {e!r}") from e

    async def _json(self, method: str, path: str, **kw) -> Any:
        r = await self.request(method, path, **kw)
        if r.status_code >= 400:
            raise HubAPIError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    async def own_scopes(self) -> set[str]:
        """The expanded scopes of this token (``GET /user``)."""
        model = await self._json("GET", "/user")
        return set(model.get("scopes") or [])

    async def require_scopes(self, *needed: str) -> None:
        """Raise :class:`HubAPIError` unless this token holds every scope in ``needed``.

        Without them the hub answers 404 for users it hides, which must never be
        mistaken for "this user has no servers".
        """
        have = await self.own_scopes()
        missing = [s for s in needed if s not in have]
        if missing:
            raise HubAPIError(f"the hub token lacks the scopes {missing}")

    async def user(self, name: str) -> dict | None:
        r = await self.request("GET", f"/users/{quote(name, safe='')}")
        if r.status_code == 404:
            return None
        if r.status_code >= 400:
            raise HubAPIError(f"GET /users/{name}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def users(self) -> list[dict]:
        """Every user (paginated through ``offset``/``limit``)."""
        out: list[dict] = []
        offset = 0
        while True:
            page = await self._json("GET", f"/users?offset={offset}&limit=200")
            if isinstance(page, dict):  # paginated form
                items = page.get("items", [])
            else:
                items = page
            out.extend(items)
            if len(items) < 200:
                return out
            offset += len(items)

    async def groups(self) -> list[dict]:
        out: list[dict] = []
        offset = 0
        while True:
            page = await self._json("GET", f"/groups?offset={offset}&limit=200")
            items = page.get("items", []) if isinstance(page, dict) else page
            out.extend(items)
            if len(items) < 200:
                return out
            offset += len(items)

    async def remove_from_group(self, group: str, users: list[str]) -> None:
        await self._json("DELETE", f"/groups/{quote(group, safe='')}/users", json={"users": users})

    async def stop_server(self, user: str, server_name: str = "", *, wait: float = 30.0) -> bool:
        """Stop one server; True once it is stopped (or was not running)."""
        path = f"/users/{quote(user, safe='')}/server" if not server_name else \
            f"/users/{quote(user, safe='')}/servers/{quote(server_name, safe='')}"
        r = await self.request("DELETE", path)
        if r.status_code == 404 or (r.status_code == 400 and "not running" in r.text):
            return True
        if r.status_code >= 400:
            raise HubAPIError(f"DELETE {path}: {r.status_code} {r.text[:300]}")
        if r.status_code == 204:
            return True
        # 202: the stop is pending; wait for it within ``wait`` seconds
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            model = await self.user(user)
            if model is None or server_name not in (model.get("servers") or {}):
                return True
            srv = model["servers"][server_name]
            if not srv.get("ready") and not srv.get("pending"):
                return True
            await asyncio.sleep(0.5)
        return False


def server_matches(server: dict, *, session_id: str | None, project: str | None) -> bool:
    """Does ``server`` (a hub server model) belong to this session/project?

    Fail closed: a server whose options name neither a session nor a project
    matches.
    """
    opts = server.get("user_options") or {}
    sid = opts.get("session_id") or opts.get("insitu_session_id")
    if sid and session_id:
        return str(sid) == str(session_id)
    proj = opts.get("project")
    if proj and project:
        def norm(p: str) -> str:
            return p[len("project-"):] if p.startswith("project-") else p
        return norm(str(proj)) == norm(str(project))
    return True


def servers_to_stop(user_model: dict | None, *, session_id: str | None = None,
                    project: str | None = None) -> list[str]:
    """Names of the active servers of ``user_model`` that belong to the session ('' = default)."""
    if not user_model:
        return []
    names = []
    # the hub lists only active servers (ready or pending) unless asked otherwise
    for name, srv in (user_model.get("servers") or {}).items():
        if srv.get("stopped"):
            continue
        if server_matches(srv, session_id=session_id, project=project):
            names.append(name)
    return sorted(names)
