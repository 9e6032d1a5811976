"""Who is calling: identities resolved by JupyterHub, the platform's identity plane.

Every insitu web service (the dataset service, the tracer) is a JupyterHub
service. It never keeps its own user list: a caller presents a hub token and the
service asks the hub who that is (``GET {hub_api}/user``); a browser logs in
through the hub's OAuth and keeps the resulting token in an HttpOnly cookie.

Invariants
- A request without a token, or with a token the hub does not recognise, is
  answered 401; a token the hub recognises but whose roles do not fit is 403.
- Roles are hub groups (``researchers``, ``data-managers``, ``dac``,
  ``auditors``, ``admins``); projects are hub groups ``project-<code>``.
  ``admins`` pass every role check, never a service check.
- Tokens are cached by their SHA-256 only, for ``cache_ttl`` seconds (default
  30 s) so that a removed group takes effect within that time.
- If the hub cannot be reached the request fails with 503: never open.

Usage in a FastAPI app::

    from hub.identity import HubAuthConfig, install_hub_auth, require_roles

    install_hub_auth(app, HubAuthConfig.from_env())

    @app.get("/x")
    def x(who: Identity = Depends(require_roles("auditors"))): ...
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse

ROLES = ("researchers", "data-managers", "dac", "auditors", "admins")
PROJECT_PREFIX = "project-"


@dataclass(frozen=True)
class Identity:
    """A caller as the hub knows it."""

    name: str
    kind: str  # "user" or "service"
    groups: frozenset[str] = frozenset()
    token: str = field(default="", repr=False, compare=False)

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(g for g in self.groups if g in ROLES)

    @property
    def projects(self) -> frozenset[str]:
        return frozenset(
            g[len(PROJECT_PREFIX):] for g in self.groups if g.startswith(PROJECT_PREFIX) and len(g) > len(PROJECT_PREFIX)
        )

    @property
    def is_admin(self) -> bool:
        return not self.is_service and "admins" in self.groups

    def has_role(self, *roles: str) -> bool:
        """True if a user holds one of ``roles`` (admins hold them all)."""
        if self.is_service:
            return False
        return self.is_admin or bool(self.roles.intersection(roles))

    @classmethod
    def from_hub_model(cls, model: dict, token: str = "") -> "Identity":
        kind = model.get("kind") or "user"
        return cls(name=model["name"], kind=kind, groups=frozenset(model.get("groups") or ()), token=token)


class HubUnavailable(Exception):
    """The hub did not answer; callers must fail closed."""


@dataclass
class HubAuthConfig:
    """Where the hub is and how this service logs browsers in.

    ``from_env`` reads the variables JupyterHub gives a managed service
    (``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_CLIENT_ID``,
    ``JUPYTERHUB_OAUTH_CALLBACK_URL``, ``JUPYTERHUB_SERVICE_PREFIX``,
    ``JUPYTERHUB_PUBLIC_HUB_URL``); an external service sets the same variables.
    """

    api_url: str
    api_token: str = ""
    client_id: str = ""
    oauth_callback_url: str = ""
    service_prefix: str = "/"
    public_hub_url: str = ""  # browser-facing origin of the hub; "" = same origin
    cookie_name: str = "insitu-auth"
    cookie_secure: bool = False
    cache_ttl: float = 30.0
    timeout: float = 10.0

    @classmethod
    def from_env(cls, **overrides) -> "HubAuthConfig":
        env = os.environ
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        values = dict(
            api_url=env.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
            api_token=env.get("JUPYTERHUB_API_TOKEN", ""),
            client_id=env.get("JUPYTERHUB_CLIENT_ID", ""),
            oauth_callback_url=env.get("JUPYTERHUB_OAUTH_CALLBACK_URL", ""),
            service_prefix=prefix,
            public_hub_url=env.get("JUPYTERHUB_PUBLIC_HUB_URL", "").rstrip("/"),
            cookie_name="insitu-" + (env.get("JUPYTERHUB_SERVICE_NAME") or "service") + "-auth",
        )
        values.update(overrides)
        return cls(**values)


class HubAuth:
    """Resolves tokens against the hub with a small TTL cache."""

    def __init__(self, config: HubAuthConfig):
        self.config = config
        self._cache: dict[str, tuple[float, Identity]] = {}

    def _client(self) -> httpx.AsyncClient:
        # One short-lived client per call: the cache keeps calls rare, and a
        # client is never shared across event loops.
        return httpx.AsyncClient(timeout=self.config.timeout)

    async def resolve(self, token: str) -> Identity | None:
        """The identity behind ``token``, ``None`` if the hub does not know it."""
        if not token:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        try:
            async with self._client() as client:
                r = await client.get(
                    self.config.api_url.rstrip("/") + "/user",
                    headers={"Authorization": f"token {token}"},
                )
        except httpx.HTTPError as e:
            raise HubUnavailable(str(e)) from e
        if r.status_code in (401, 403, 404):
            self._cache.pop(key, None)
            return None
        if r.status_code >= 400:
            raise HubUnavailable(f"hub answered {r.status_code}")
        ident = Identity.from_hub_model(r.json(), token=token)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = (now + self.config.cache_ttl, ident)
        return ident

    def forget(self, token: str) -> None:
        self._cache.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    # --- browser login through the hub's OAuth ---------------------------
    def authorize_url(self, state: str) -> str:
        q = urlencode(
            {
                "client_id": self.config.client_id,
                "redirect_uri": self.config.oauth_callback_url,
                "response_type": "code",
                "state": state,
            }
        )
        return f"{self.config.public_hub_url}/hub/api/oauth2/authorize?{q}"

    async def exchange_code(self, code: str) -> str:
        try:
            async with self._client() as client:
                r = await client.post(
                    self.config.api_url.rstrip("/") + "/oauth2/token",
                    data={
                        "client_id": self.config.client_id,
                        "client_secret": self.config.api_token,
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": self.config.oauth_callback_url,
                    },
                )
        except httpx.HTTPError as e:
            raise HubUnavailable(str(e)) from e
        if r.status_code != 200:
            raise HTTPException(403, f"login refused by the hub ({r.status_code})")
        return r.json()["access_token"]


def token_from_request(request: Request, cookie_name: str) -> str:
    """The hub token of a request: ``Authorization: token|Bearer T`` or the login cookie."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and value.strip():
            return value.strip()
        return ""
    return request.cookies.get(cookie_name, "")


def get_hub_auth(request: Request) -> HubAuth:
    auth = getattr(request.app.state, "hub_auth", None)
    if auth is None:  # a wiring error, never an open door
        raise HTTPException(503, "identity plane not configured")
    return auth


async def optional_identity(request: Request) -> Identity | None:
    """The caller, or ``None`` when no (valid) token came with the request."""
    auth = get_hub_auth(request)
    token = token_from_request(request, auth.config.cookie_name)
    try:
        return await auth.resolve(token)
    except HubUnavailable:
        raise HTTPException(503, "the hub cannot be reached to check the caller's identity")


async def current_identity(request: Request) -> Identity:
    """The caller; 401 when there is none."""
    ident = await optional_identity(request)
    if ident is None:
        raise HTTPException(401, "a valid JupyterHub token is required", headers={"WWW-Authenticate": "token"})
    request.state.identity = ident
    return ident


def require_roles(*roles: str):
    """Dependency: a user holding one of ``roles`` (or an admin)."""

    async def dep(ident: Identity = Depends(current_identity)) -> Identity:
        if not ident.has_role(*roles):
            raise HTTPException(403, f"requires one of the roles: {', '.join(roles)}")
        return ident

    return dep


def require_service(*names: str):
    """Dependency: one of the named platform services (never a user, not even an admin)."""

    async def dep(ident: Identity = Depends(current_identity)) -> Identity:
        if not ident.is_service or ident.name not in names:
            raise HTTPException(403, f"only the platform services {', '.join(names)} may call this")
        return ident

    return dep


def require_any(*checks: Callable[[Identity], bool]):
    """Dependency: a caller that passes one of several predicates ``f(identity) -> bool``."""

    async def dep(ident: Identity = Depends(current_identity)) -> Identity:
        if not any(check(ident) for check in checks):
            raise HTTPException(403, "not allowed")
        return ident

    return dep


def login_router(cookie_path: str = "/") -> APIRouter:
    """``GET /login`` → the hub's OAuth; ``GET /oauth_callback`` → cookie → back to ``next``."""
    router = APIRouter(include_in_schema=False)
    state_cookie = "insitu-oauth-state"

    @router.get("/login")
    async def login(request: Request, next: str = "/"):
        auth = get_hub_auth(request)
        state = secrets.token_urlsafe(24)
        if not next.startswith("/") or next.startswith("//"):
            next = "/"
        resp = RedirectResponse(auth.authorize_url(state), status_code=302)
        resp.set_cookie(state_cookie, f"{state}|{next}", httponly=True, samesite="lax", max_age=600, path=cookie_path,
                        secure=auth.config.cookie_secure)
        return resp

    @router.get("/oauth_callback")
    async def oauth_callback(request: Request, code: str = "", state: str = ""):
        auth = get_hub_auth(request)
        saved = request.cookies.get(state_cookie, "")
        saved_state, _, next_url = saved.partition("|")
        if not code or not state or not saved_state or not secrets.compare_digest(state, saved_state):
            raise HTTPException(400, "OAuth state mismatch: start the login again")
        try:
            token = await auth.exchange_code(code)
        except HubUnavailable:
            raise HTTPException(503, "the hub cannot be reached")
        resp = RedirectResponse(next_url or "/", status_code=302)
        resp.set_cookie(auth.config.cookie_name, token, httponly=True, samesite="lax", path=cookie_path,
                        secure=auth.config.cookie_secure)
        resp.delete_cookie(state_cookie, path=cookie_path)
        return resp

    @router.get("/logout")
    async def logout(request: Request):
        auth = get_hub_auth(request)
        token = request.cookies.get(auth.config.cookie_name, "")
        if token:
            auth.forget(token)
        resp = RedirectResponse(f"{auth.config.public_hub_url}/hub/logout", status_code=302)
        resp.delete_cookie(auth.config.cookie_name, path=cookie_path)
        return resp

    return router


def install_hub_auth(app: FastAPI, config: HubAuthConfig) -> HubAuth:
    """Attach a :class:`HubAuth` to ``app`` (``app.state.hub_auth``)."""
    auth = HubAuth(config)
    app.state.hub_auth = auth
    return auth
