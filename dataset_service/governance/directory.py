"""Who is in which project, asked of the hub with the service's own token.

The session checks never trust a caller's word on membership: they ask the hub
(``GET {hub_api}/users/{name}``, scope ``read:users``) each time. An unknown
user has no projects; a hub that cannot be reached is :class:`HubUnavailable`
(callers answer 503: fail closed).
"""
from __future__ import annotations

from urllib.parse import quote

import httpx

from insitu.identity import PROJECT_PREFIX, HubUnavailable


class HubDirectory:
    def __init__(self, api_url: str, token: str, *, timeout: float = 10.0):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def groups_of(self, user: str) -> frozenset[str] | None:
        """The hub groups of ``user``; ``None`` when the hub does not know the user."""
        if not self.token:
            raise HubUnavailable("the dataset service has no hub token to look up users")
        try:
            r = httpx.get(f"{self.api_url}/users/{quote(user, safe='')}",
                          headers={"Authorization": f"token {self.token}"}, timeout=self.timeout)
        except httpx.HTTPError as e:
            raise HubUnavailable(str(e)) from e
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise HubUnavailable(f"hub answered {r.status_code} to a user look-up")
        return frozenset(r.json().get("groups") or ())

    def projects_of(self, user: str) -> frozenset[str]:
        groups = self.groups_of(user) or frozenset()
        return frozenset(g[len(PROJECT_PREFIX):] for g in groups
                         if g.startswith(PROJECT_PREFIX) and len(g) > len(PROJECT_PREFIX))

    def members_of(self, group: str) -> list[str]:
        """Users of the hub group ``group`` (``GET /users``, scope ``read:users``, page by page)."""
        if not self.token:
            raise HubUnavailable("the dataset service has no hub token to look up users")
        out: list[str] = []
        offset = 0
        while True:
            try:
                r = httpx.get(f"{self.api_url}/users", params={"offset": offset, "limit": 200},
                              headers={"Authorization": f"token {self.token}"}, timeout=self.timeout)
            except httpx.HTTPError as e:
                raise HubUnavailable(str(e)) from e
            if r.status_code != 200:
                raise HubUnavailable(f"hub answered {r.status_code} to a user listing")
            page = r.json()
            items = page.get("items", []) if isinstance(page, dict) else page
            out += [u["name"] for u in items if group in (u.get("groups") or ()) and u.get("kind", "user") == "user"]
            if len(items) < 200:
                return sorted(out)
            offset += len(items)
