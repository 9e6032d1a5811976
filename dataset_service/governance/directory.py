"""Who is in which project, asked of the hub with the service's own token.

The session checks never trust a caller's word on membership: they ask the hub
(``GET {hub_api}/users/{name}``, scope ``read:users``) each time. An unknown
user has no projects; a hub that cannot be reached, or answers an error, is
:class:`HubUnavailable` (callers answer 503: fail closed). The calls are the core's
hub API client's (``insitu.hubapi.HubAPISync``).
"""
from __future__ import annotations

from insitu.hubapi import HubAPISync
from insitu.identity import HubUnavailable
from insitu.names import project_of


class HubDirectory:
    def __init__(self, api_url: str, token: str, *, timeout: float = 10.0):
        self.hub = HubAPISync(api_url, token, timeout=timeout)

    def _require_token(self) -> None:
        if not self.hub.token:
            raise HubUnavailable("the dataset service has no hub token to look up users")

    def groups_of(self, user: str) -> frozenset[str] | None:
        """The hub groups of ``user``; ``None`` when the hub does not know the user."""
        self._require_token()
        model = self.hub.user(user)
        return None if model is None else frozenset(model.get("groups") or ())

    def projects_of(self, user: str) -> frozenset[str]:
        return frozenset(p for p in map(project_of, self.groups_of(user) or ()) if p)

    def members_of(self, group: str) -> list[str]:
        """Users of the hub group ``group`` (``GET /users``, scope ``read:users``, page by page)."""
        self._require_token()
        return sorted(u["name"] for u in self.hub.listing("users")
                      if group in (u.get("groups") or ()) and u.get("kind", "user") == "user")
