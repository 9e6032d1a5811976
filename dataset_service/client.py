"""Client of the dataset service API used by the hub (docs/CONTRACTS.md §3).

``DatasetServiceClient(base_url, token)`` talks to the service under its
prefix (``/services/dataset-service`` behind the hub proxy, or the service's
own address). Every call raises:

* :class:`SessionRefused` on a 403 from ``open_session`` (with the service's
  ``reason`` and ``refused`` list),
* :class:`DatasetServiceRejected` on any other 4xx (``status`` and ``detail``),
* :class:`DatasetServiceUnavailable` on a transport error, a timeout or a 5xx.

Callers that must fail closed (the spawners) treat every exception from this
module as "no".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

__all__ = [
    "DatasetServiceError",
    "DatasetServiceUnavailable",
    "DatasetServiceRejected",
    "SessionRefused",
    "DatasetServiceClient",
]


class DatasetServiceError(Exception):
    """Base class of every error raised by this client."""


class DatasetServiceUnavailable(DatasetServiceError):
    """The service could not be reached or answered with a 5xx."""


class DatasetServiceRejected(DatasetServiceError):
    """The service answered with a 4xx."""

    def __init__(self, status: int, detail: Any):
        super().__init__(f"dataset service refused ({status}): {detail}")
        self.status = status
        self.detail = detail


class SessionRefused(DatasetServiceRejected):
    """``POST /api/sessions`` answered 403: some dataset is not covered."""

    def __init__(self, status: int, detail: Any):
        super().__init__(status, detail)
        d = detail if isinstance(detail, dict) else {"reason": str(detail)}
        self.reason: str = str(d.get("reason", ""))
        self.refused: list[dict] = list(d.get("refused") or [])


def _detail(resp: httpx.Response) -> Any:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    return body


class DatasetServiceClient:
    """Synchronous and asynchronous calls share the same request builders.

    ``transport`` / ``async_transport`` let a caller route over a Unix socket
    (``httpx.HTTPTransport(uds=...)``) or inject a test transport.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._transport = transport
        self._async_transport = async_transport

    # -- plumbing -----------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}", "Accept": "application/json"}

    @staticmethod
    def _check(resp: httpx.Response, *, refused_is_session: bool = False) -> httpx.Response:
        if resp.status_code >= 500:
            raise DatasetServiceUnavailable(f"dataset service error {resp.status_code}: {_detail(resp)}")
        if resp.status_code == 403 and refused_is_session:
            raise SessionRefused(403, _detail(resp))
        if resp.status_code >= 400:
            raise DatasetServiceRejected(resp.status_code, _detail(resp))
        return resp

    def _request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            with httpx.Client(timeout=self.timeout, transport=self._transport) as c:
                return c.request(method, self.base_url + path, headers=self._headers(), **kw)
        except httpx.HTTPError as e:
            raise DatasetServiceUnavailable(f"dataset service unreachable: {e!r}") from e

    async def _arequest(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self._async_transport) as c:
                return await c.request(method, self.base_url + path, headers=self._headers(), **kw)
        except httpx.HTTPError as e:
            raise DatasetServiceUnavailable(f"dataset service unreachable: {e!r}") from e

    @staticmethod
    def _json(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError as e:
            raise DatasetServiceUnavailable(f"dataset service answered non-JSON ({resp.status_code})") from e

    # -- the API (synchronous) ----------------------------------------------
    def usable_datasets(self, user: str) -> list[dict]:
        """``GET /api/users/{name}/usable-datasets``."""
        r = self._check(self._request("GET", f"/api/users/{quote(user, safe='')}/usable-datasets"))
        return list(self._json(r))

    def open_session(self, user: str, project: str, dataset_ids: list[str], profile: str) -> dict:
        """``POST /api/sessions`` → the session (201), or :class:`SessionRefused`."""
        body = {"user": user, "project": project, "dataset_ids": list(dataset_ids), "profile": profile}
        r = self._check(self._request("POST", "/api/sessions", json=body), refused_is_session=True)
        return dict(self._json(r))

    def close_session(self, session_id: str, reason: str = "stopped") -> None:
        """``DELETE /api/sessions/{id}?reason=`` (204). A 404 (already gone) is not an error.

        ``reason``: stopped, revoked, invalidated, expired, crashed, or failed_start (the workspace never
        started: traced as START_FAILED instead of END_SESSION)."""
        r = self._request("DELETE", f"/api/sessions/{quote(str(session_id), safe='')}", params={"reason": reason})
        if r.status_code == 404:
            return
        self._check(r)

    def uncovered_sessions(self) -> list[dict]:
        """``GET /api/sessions/uncovered``."""
        r = self._check(self._request("GET", "/api/sessions/uncovered"))
        return list(self._json(r))

    def get_session(self, session_id: str) -> dict:
        """``GET /api/sessions/{id}``."""
        r = self._check(self._request("GET", f"/api/sessions/{quote(str(session_id), safe='')}"))
        return dict(self._json(r))

    # -- access governance (docs/CONTRACTS.md §3.1), for scripts and reports --
    def grants(self, *, project: str | None = None, dataset_id: str | None = None,
               active: bool = False) -> list[dict]:
        """``GET /api/grants``: the grants the caller may see (``status`` says whether one is in force)."""
        params = {k: v for k, v in {"project": project, "dataset_id": dataset_id}.items() if v}
        if active:
            params["active"] = "true"
        r = self._check(self._request("GET", "/api/grants", params=params))
        return list(self._json(r))

    def revoke_grant(self, grant_id: int, reason: str) -> dict:
        """``POST /api/grants/{id}/revoke`` (a DAC member's token)."""
        r = self._check(self._request("POST", f"/api/grants/{int(grant_id)}/revoke", json={"reason": reason}))
        return dict(self._json(r))

    def access_history(self, dataset_id: str) -> dict:
        """``GET /api/datasets/{id}/access-history``: sessions, grants and requests of a dataset."""
        r = self._check(self._request("GET", f"/api/datasets/{quote(dataset_id, safe='')}/access-history"))
        return dict(self._json(r))

    # -- the API (asynchronous, for the hub's event loop) --------------------
    async def ausable_datasets(self, user: str) -> list[dict]:
        r = self._check(await self._arequest("GET", f"/api/users/{quote(user, safe='')}/usable-datasets"))
        return list(self._json(r))

    async def aopen_session(self, user: str, project: str, dataset_ids: list[str], profile: str) -> dict:
        body = {"user": user, "project": project, "dataset_ids": list(dataset_ids), "profile": profile}
        r = self._check(await self._arequest("POST", "/api/sessions", json=body), refused_is_session=True)
        return dict(self._json(r))

    async def aclose_session(self, session_id: str, reason: str = "stopped") -> None:
        r = await self._arequest("DELETE", f"/api/sessions/{quote(str(session_id), safe='')}",
                                 params={"reason": reason})
        if r.status_code == 404:
            return
        self._check(r)

    async def auncovered_sessions(self) -> list[dict]:
        r = self._check(await self._arequest("GET", "/api/sessions/uncovered"))
        return list(self._json(r))

    async def aget_session(self, session_id: str) -> dict:
        r = self._check(await self._arequest("GET", f"/api/sessions/{quote(str(session_id), safe='')}"))
        return dict(self._json(r))
