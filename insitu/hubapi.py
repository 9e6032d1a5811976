"""The JupyterHub REST API, called with a service's own token: the one hub API client of the platform.

The dataset service looks users and group members up (``dataset_service/governance/directory.py``, sync:
inside request handlers); the hub's reconcilers list users and groups, change group membership and stop
servers (``hub/reconciler.py``, ``hub/keycloak_sync.py``, async: in an event loop). Both clients build the
same paths, follow the same pagination (``offset``/``limit``, the hub answering a list or a paginated
object) and raise the same :class:`HubAPIError`.

Errors: a hub that cannot be reached, or answers an error, raises :class:`HubAPIError`, a
:class:`insitu.identity.HubUnavailable`: callers fail closed (a service answers 503). A user the hub does
not know is ``None``.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx

from insitu.identity import HubUnavailable

PAGE_SIZE = 200


class HubAPIError(HubUnavailable):
    """The hub answered with an error or could not be reached."""


def user_path(name: str) -> str:
    return f"/users/{quote(name, safe='')}"


def page_items(page: Any) -> list:
    """The items of one page of a listing (the hub answers a list, or ``{"items": [...]}`` when paginated)."""
    return page.get("items", []) if isinstance(page, dict) else list(page or [])


class _Client:
    def __init__(self, api_url: str, token: str, *, timeout: float = 10.0, transport: Any = None):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._transport = transport

    def _kw(self) -> dict:
        return {"timeout": self.timeout, "transport": self._transport}

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    @staticmethod
    def _answer(r: httpx.Response, method: str, path: str) -> Any:
        if r.status_code >= 400:
            raise HubAPIError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    @classmethod
    def _user_answer(cls, r: httpx.Response, path: str) -> dict | None:
        return None if r.status_code == 404 else cls._answer(r, "GET", path)

    @staticmethod
    def _listing(kind: str, offset: int) -> str:
        return f"/{kind}?offset={offset}&limit={PAGE_SIZE}"


class HubAPISync(_Client):
    """Blocking calls (httpx.Client), for code that runs outside an event loop."""

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            with httpx.Client(**self._kw()) as c:
                return c.request(method, self.api_url + path, headers=self._headers(), **kw)
        except httpx.HTTPError as e:
            raise HubAPIError(f"hub unreachable: {e!r}") from e

    def user(self, name: str) -> dict | None:
        path = user_path(name)
        return self._user_answer(self.request("GET", path), path)

    def listing(self, kind: str) -> list[dict]:
        """Every item of ``/users`` or ``/groups``, page by page."""
        out: list[dict] = []
        while True:
            path = self._listing(kind, len(out))
            items = page_items(self._answer(self.request("GET", path), "GET", path))
            out.extend(items)
            if len(items) < PAGE_SIZE:
                return out


class HubAPI(_Client):
    """Awaitable calls (httpx.AsyncClient), for the hub's reconcilers."""

    async def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            async with httpx.AsyncClient(**self._kw()) as c:
                return await c.request(method, self.api_url + path, headers=self._headers(), **kw)
        except httpx.HTTPError as e:
            raise HubAPIError(f"hub unreachable: {e!r}") from e

    async def _json(self, method: str, path: str, **kw) -> Any:
        return self._answer(await self.request(method, path, **kw), method, path)

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
        path = user_path(name)
        return self._user_answer(await self.request("GET", path), path)

    async def listing(self, kind: str) -> list[dict]:
        """Every item of ``/users`` or ``/groups``, page by page."""
        out: list[dict] = []
        while True:
            items = page_items(await self._json("GET", self._listing(kind, len(out))))
            out.extend(items)
            if len(items) < PAGE_SIZE:
                return out

    async def users(self) -> list[dict]:
        return await self.listing("users")

    async def groups(self) -> list[dict]:
        return await self.listing("groups")

    async def remove_from_group(self, group: str, users: list[str]) -> None:
        await self._json("DELETE", f"/groups/{quote(group, safe='')}/users", json={"users": users})

    async def stop_server(self, user: str, server_name: str = "", *, wait: float = 30.0) -> bool:
        """Stop one server; True once it is stopped (or was not running)."""
        path = user_path(user) + (f"/servers/{quote(server_name, safe='')}" if server_name else "/server")
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
