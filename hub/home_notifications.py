"""The user's notifications on the hub's home page, asked of the dataset service as that user.

The dataset service keeps each user's in-app notifications (``/api/notifications``:
the newest items and the unread count). The hub's home page shows them, so a
researcher, a committee member or a data manager sees what happened without
opening another page.

How the hub asks as the user, with JupyterHub's own mechanisms only:

- the hub mints, for the user, a short-lived API token (``orm.User.new_api_token``)
  whose scopes are a subset of the user's own: access to the dataset service and
  the user's own name and groups, nothing else (JupyterHub checks the subset);
- the token stays in the hub's memory (never sent to the browser) and is reused
  until shortly before it expires; JupyterHub purges expired tokens itself;
- the dataset service resolves it with the hub like any other token
  (``insitu.identity``): the answer is the user's own list, checked there.

The page never waits long: a service that does not answer within ``timeout``
seconds (or answers an error) gives a plain "cannot be shown now" on the home page.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

TOKEN_LIFETIME = 3600  # seconds
TOKEN_RENEW_BEFORE = 300  # seconds before expiry a new token is made
NOTE = "insitu hub home: notifications"
SHOWN = 5


def token_scopes(service: str) -> list[str]:
    return [f"access:services!service={service}", "read:users:name!user", "read:users:groups!user"]


class HomeNotifications:
    """``await HomeNotifications(url, service)(user)`` → {"ok", "unread", "items", "all_url"}."""

    def __init__(self, service_url: str, service: str = "dataset-service", public_prefix: str = "",
                 timeout: float = 3.0, transport: httpx.AsyncBaseTransport | None = None):
        self.service_url = service_url.rstrip("/")
        self.service = service
        self.public_prefix = (public_prefix or f"/services/{service}").rstrip("/")
        self.timeout = timeout
        self.transport = transport
        self._tokens: dict[str, tuple[str, float]] = {}

    def _token(self, user) -> str:
        held = self._tokens.get(user.name)
        if held and held[1] - TOKEN_RENEW_BEFORE > time.monotonic():
            return held[0]
        orm_user = getattr(user, "orm_user", user)
        token = orm_user.new_api_token(note=NOTE, expires_in=TOKEN_LIFETIME, scopes=token_scopes(self.service))
        self._tokens[user.name] = (token, time.monotonic() + TOKEN_LIFETIME)
        return token

    def _view(self, item: dict) -> dict:
        link = str(item.get("link") or "")
        when = str(item.get("created_at") or "")
        try:
            t = dt.datetime.fromisoformat(when)
            when = f"{t.day} {t:%b %Y, %H:%M} UTC"
        except ValueError:
            pass
        return {"title": str(item.get("title") or ""), "body": str(item.get("body") or ""),
                "kind": str(item.get("kind") or ""), "read": bool(item.get("read")), "when": when,
                "href": self.public_prefix + link if link.startswith("/") else ""}

    async def __call__(self, user) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "unread": 0, "items": [],
                               "all_url": self.public_prefix + "/notifications"}
        if user is None:
            return out
        try:
            token = self._token(user)
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as c:
                r = await c.get(self.service_url + "/api/notifications", params={"limit": SHOWN},
                                headers={"Authorization": f"token {token}", "Accept": "application/json"})
            if r.status_code == 401:  # the hub no longer knows the token (e.g. purged): make a new one next time
                self._tokens.pop(user.name, None)
            if r.status_code != 200:
                return out
            body = r.json()
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                return out
            out.update(ok=True, unread=int(body.get("unread") or 0),
                       items=[self._view(i) for i in items[:SHOWN] if isinstance(i, dict)])
        except Exception:  # noqa: BLE001 - the home page renders whatever the service does
            return out
        return out
