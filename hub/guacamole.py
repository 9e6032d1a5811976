"""Registering desktop workspaces with Apache Guacamole (REST API).

When a desktop workspace starts, the hub creates a Guacamole VNC connection to
the pod and grants READ on it to the researcher alone; when it stops, the hub
deletes the connection. The connection carries every switch that keeps data
inside: no file transfer (SFTP off, its upload and download disabled), and no
copy from the remote side (``disable-copy``); pasting into the desktop stays
allowed. A VNC connection has no drive or printing channel at all (those are
RDP parameters in Guacamole).

Calls (Guacamole 1.x REST API, token in the ``token`` query parameter):

* ``POST /api/tokens`` (form ``username``, ``password``) → ``{authToken,
  dataSource, ...}``
* ``POST /api/session/data/{ds}/connections`` (JSON) → the connection, with
  its ``identifier``
* ``PATCH /api/session/data/{ds}/users/{user}/permissions`` (JSON patch
  ``add /connectionPermissions/{id} READ``) → 204; on 404 the user is created
  first (``POST /api/session/data/{ds}/users`` with a random password nobody
  knows: the researcher logs in through single sign-on) and the grant retried
* ``DELETE /api/session/data/{ds}/connections/{id}`` → 204
* ``DELETE /api/tokens/{token}`` → 204 (the admin token is released after each
  operation)
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

import httpx

__all__ = [
    "GuacamoleError",
    "GuacamoleClient",
    "LOCKDOWN_PARAMETERS",
    "connection_body",
    "grant_patch",
]

#: Parameters set on every desktop (VNC) connection, with the names of the
#: Guacamole 1.5 VNC protocol (``org/apache/guacamole/protocols/vnc.json`` in
#: guacamole-ext; a test checks each name and value against that file of the
#: version the chart deploys). File transfer off (SFTP off, and its download and
#: upload disabled should anyone turn it on), no copy from the remote side (paste
#: in stays allowed), no audio. Drive redirection and printing are RDP features:
#: the VNC protocol has no such parameter, so nothing can turn them on (tested).
LOCKDOWN_PARAMETERS: Mapping[str, str] = {
    "disable-copy": "true",
    "disable-paste": "false",
    "enable-sftp": "false",
    "sftp-disable-download": "true",
    "sftp-disable-upload": "true",
    "enable-audio": "false",
}


class GuacamoleError(RuntimeError):
    """A Guacamole call failed; ``status`` is the HTTP status (0: unreachable)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


def connection_body(name: str, hostname: str, port: int, password: str) -> dict[str, Any]:
    """The JSON body that creates a locked-down VNC connection (pure)."""
    if not name or "/" in name:
        raise ValueError(f"bad connection name {name!r}")
    if not (0 < int(port) < 65536):
        raise ValueError(f"bad port {port!r}")
    return {
        "parentIdentifier": "ROOT",
        "name": name,
        "protocol": "vnc",
        "parameters": {"hostname": hostname, "port": str(int(port)), "password": password, **LOCKDOWN_PARAMETERS},
        "attributes": {"max-connections": "1", "max-connections-per-user": "1"},
    }


def grant_patch(identifier: str) -> list[dict[str, str]]:
    """The JSON patch granting READ on one connection (pure)."""
    return [{"op": "add", "path": f"/connectionPermissions/{identifier}", "value": "READ"}]


@dataclass
class GuacamoleClient:
    """A small async client for the calls above. ``base_url`` is the web
    application's root (e.g. ``http://guacamole.insitu.svc:8080/guacamole``)."""

    base_url: str
    username: str
    password: str
    timeout: float = 10.0
    transport: httpx.AsyncBaseTransport | None = None

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url.rstrip("/"), timeout=self.timeout, transport=self.transport)

    @staticmethod
    def _check(resp: httpx.Response, what: str, ok: tuple[int, ...]) -> httpx.Response:
        if resp.status_code not in ok:
            detail = resp.text[:300]
            raise GuacamoleError(f"Guacamole {what}: HTTP {resp.status_code} {detail}", resp.status_code)
        return resp

    async def _login(self, http: httpx.AsyncClient) -> tuple[str, str]:
        resp = self._check(
            await http.post("/api/tokens", data={"username": self.username, "password": self.password}),
            "login",
            (200,),
        )
        body = resp.json()
        try:
            return body["authToken"], body["dataSource"]
        except (KeyError, TypeError) as e:
            raise GuacamoleError(f"Guacamole login: unexpected answer {body!r}") from e

    async def _logout(self, http: httpx.AsyncClient, token: str) -> None:
        try:
            await http.delete(f"/api/tokens/{quote(token, safe='')}")
        except httpx.HTTPError:
            pass  # the token expires by itself

    async def create_desktop_connection(
        self, name: str, user: str, hostname: str, port: int, vnc_password: str
    ) -> str:
        """Create the connection, grant READ to ``user`` only; return its identifier.
        If the grant fails the connection is deleted again (no orphan)."""
        body = connection_body(name, hostname, port, vnc_password)
        try:
            async with self._client() as http:
                token, ds = await self._login(http)
                q = {"token": token}
                base = f"/api/session/data/{quote(ds, safe='')}"
                try:
                    resp = self._check(
                        await http.post(f"{base}/connections", params=q, json=body), "create connection", (200,)
                    )
                    ident = str(resp.json()["identifier"])
                    try:
                        await self._grant(http, base, q, user, ident)
                    except Exception:
                        await http.delete(f"{base}/connections/{quote(ident, safe='')}", params=q)
                        raise
                    return ident
                finally:
                    await self._logout(http, token)
        except httpx.HTTPError as e:
            raise GuacamoleError(f"Guacamole unreachable: {e}") from e

    async def _grant(self, http: httpx.AsyncClient, base: str, q: dict, user: str, ident: str) -> None:
        url = f"{base}/users/{quote(user, safe='')}/permissions"
        resp = await http.patch(url, params=q, json=grant_patch(ident))
        if resp.status_code == 404:
            new_user = {"username": user, "password": secrets.token_urlsafe(32), "attributes": {"disabled": ""}}
            self._check(await http.post(f"{base}/users", params=q, json=new_user), "create user", (200,))
            resp = await http.patch(url, params=q, json=grant_patch(ident))
        self._check(resp, "grant connection", (204,))

    async def delete_connection(self, identifier: str) -> None:
        """Delete the connection (a connection already gone is fine)."""
        try:
            async with self._client() as http:
                token, ds = await self._login(http)
                try:
                    resp = await http.delete(
                        f"/api/session/data/{quote(ds, safe='')}/connections/{quote(identifier, safe='')}",
                        params={"token": token},
                    )
                    self._check(resp, "delete connection", (204, 404))
                finally:
                    await self._logout(http, token)
        except httpx.HTTPError as e:
            raise GuacamoleError(f"Guacamole unreachable: {e}") from e
