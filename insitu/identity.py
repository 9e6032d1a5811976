"""Who is calling a platform service: JupyterHub's ``HubOAuth`` with scope checks, for FastAPI.

Every insitu web service (the dataset service, the tracer) is a JupyterHub
service and keeps no user list of its own. The hub's own client,
``jupyterhub.services.auth.HubOAuth``, does the talking: it resolves a token
(``GET {hub_api}/user``, cached), checks scopes (``check_scopes``), builds the
OAuth authorize URL, keeps the OAuth state and PKCE verifier and exchanges the
code. This module adds only what FastAPI needs around it.

Invariants
- A request without a token, or with a token the hub does not recognise, is
  answered 401.
- A token the hub recognises but that lacks the service's access scope
  (``access:services!service=<name>``, or the scopes named in
  ``HubAuthConfig.access_scopes``) is answered 403, whatever its owner's roles:
  an ``identify``-only token, a workspace's own server token or a token made
  for another service does not reach this one.
- Roles are hub groups (``insitu.names.ROLES``), projects hub groups
  ``project-<code>``; ``admins`` pass every role check, never a service check.
- Hub answers are cached by ``HubOAuth`` for ``cache_ttl`` seconds (default
  ``DEFAULT_CACHE_TTL`` = 10 s): a revoked or expired token, or a removed group,
  takes effect within that time.
- A browser session is a cookie signed with a key of this service alone
  (``cookie_secret``, by default derived from the service's own hub API token),
  salted with the cookie's name, limited to the service's path prefix, HttpOnly,
  SameSite=Lax, ``Secure`` whenever the platform is served over https. Another
  service cannot read it as its own, and the OAuth token inside carries only
  this service's access scope.
- If the hub cannot be reached the request fails with 503: never open.

Usage::

    from insitu.identity import HubAuthConfig, install_hub_auth, login_router, RequireRoles

    install_hub_auth(app, HubAuthConfig.from_env(service_name="tracer"))
    app.include_router(login_router(cookie_path=prefix), prefix=prefix)

    @app.get("/x")
    def x(who: Annotated[Identity, Depends(require_roles("auditors"))]): ...
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jupyterhub.services.auth import HubAuth as _JupyterHubAuth
from jupyterhub.services.auth import HubOAuth
from tornado.httputil import url_concat
from tornado.web import HTTPError as TornadoHTTPError

from insitu.names import PROJECT_PREFIX, ROLES, Role, access_scope, project_of

DEFAULT_CACHE_TTL = 10.0
SESSION_MAX_AGE = 8 * 3600  # seconds a browser session cookie is honoured (the token may expire sooner)

__all__ = [
    "CurrentIdentity", "DEFAULT_CACHE_TTL", "HubAuthConfig", "HubUnavailable", "Identity", "OptionalIdentity",
    "PROJECT_PREFIX", "ROLES", "ServiceAuth", "current_identity", "get_hub_auth", "install_hub_auth",
    "login_router", "optional_identity", "require_roles", "require_service", "token_from_request",
]


@dataclass(frozen=True)
class Identity:
    """A caller as the hub knows it, with the scopes of the token it presented."""

    name: str
    kind: str  # "user" or "service"
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    token: str = field(default="", repr=False, compare=False)

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(g for g in self.groups if g in ROLES)

    @property
    def projects(self) -> frozenset[str]:
        return frozenset(p for p in map(project_of, self.groups) if p)

    @property
    def is_admin(self) -> bool:
        return not self.is_service and Role.ADMINS.value in self.groups

    def has_role(self, *roles: str) -> bool:
        """True if a user holds one of ``roles`` (admins hold them all)."""
        if self.is_service:
            return False
        return self.is_admin or bool(self.roles.intersection(roles))

    @classmethod
    def from_hub_model(cls, model: dict, token: str = "") -> "Identity":
        return cls(name=model["name"], kind=model.get("kind") or "user", groups=frozenset(model.get("groups") or ()),
                   scopes=frozenset(model.get("scopes") or ()), token=token)


class HubUnavailable(Exception):
    """The hub did not answer; callers must fail closed."""


@dataclass
class HubAuthConfig:
    """Where the hub is, which scope this service requires, and how browsers log in.

    ``from_env`` reads the variables JupyterHub gives a managed service
    (``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_CLIENT_ID``,
    ``JUPYTERHUB_OAUTH_CALLBACK_URL``, ``JUPYTERHUB_SERVICE_PREFIX``,
    ``JUPYTERHUB_SERVICE_NAME``, ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``) and
    ``JUPYTERHUB_PUBLIC_HUB_URL``; an external service sets the same variables.
    """

    api_url: str
    api_token: str = ""
    service_name: str = ""
    client_id: str = ""
    oauth_callback_url: str = ""
    service_prefix: str = "/"
    public_hub_url: str = ""  # browser-facing origin of the hub; "" = same origin
    access_scopes: frozenset[str] | None = None  # None: {access:services!service=<service_name>}
    cookie_name: str = ""  # "" = insitu-<service_name>-session
    cookie_secure: bool | None = None  # None: Secure when public_hub_url is https
    cookie_secret: str = ""  # "" = derived from api_token
    cache_ttl: float = DEFAULT_CACHE_TTL
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.access_scopes is None:
            if not self.service_name:
                raise ValueError("HubAuthConfig needs service_name (or explicit access_scopes)")
            self.access_scopes = frozenset({access_scope(self.service_name)})
        self.access_scopes = frozenset(self.access_scopes)
        if not self.access_scopes:
            raise ValueError("a service must require at least one access scope")
        if not self.cookie_name:
            self.cookie_name = f"insitu-{self.service_name or 'service'}-session"
        if self.cookie_secure is None:
            self.cookie_secure = self.public_hub_url.lower().startswith("https://")

    @classmethod
    def from_env(cls, default_service_name: str = "", **overrides) -> "HubAuthConfig":
        import json

        env = os.environ
        scopes = env.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES")
        values = dict(
            api_url=env.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api"),
            api_token=env.get("JUPYTERHUB_API_TOKEN", ""),
            service_name=env.get("JUPYTERHUB_SERVICE_NAME") or default_service_name,
            client_id=env.get("JUPYTERHUB_CLIENT_ID", ""),
            oauth_callback_url=env.get("JUPYTERHUB_OAUTH_CALLBACK_URL", ""),
            service_prefix=env.get("JUPYTERHUB_SERVICE_PREFIX", "/"),
            public_hub_url=env.get("JUPYTERHUB_PUBLIC_HUB_URL", "").rstrip("/"),
            access_scopes=frozenset(json.loads(scopes)) if scopes else None,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class ServiceAuth:
    """One service's view of the hub: a configured ``HubOAuth`` plus the session-cookie signer."""

    def __init__(self, config: HubAuthConfig):
        self.config = config
        traits = dict(api_url=config.api_url, api_token=config.api_token or "-",
                      cache_max_age=max(0, int(config.cache_ttl)), access_scopes=set(config.access_scopes),
                      base_url=config.service_prefix or "/", hub_prefix="/hub/",
                      hub_host=config.public_hub_url)
        if config.client_id:
            self.hub: _JupyterHubAuth = HubOAuth(oauth_client_id=config.client_id,
                                                 oauth_redirect_uri=config.oauth_callback_url, **traits)
        else:  # token-only: no browser login
            self.hub = _JupyterHubAuth(**traits)
        secret = config.cookie_secret or hmac.new(config.api_token.encode() or b"-", b"insitu-session-cookie",
                                                  hashlib.sha256).hexdigest()
        self._signer = URLSafeTimedSerializer(secret, salt="insitu-session:" + config.cookie_name)

    # --- tokens ---------------------------------------------------------------
    async def resolve(self, token: str) -> Identity | None:
        """The identity behind ``token`` (any scopes), ``None`` if the hub does not know it."""
        if not token:
            return None
        try:
            model = await self.hub.user_for_token(token, use_cache=self.config.cache_ttl >= 1, sync=False)
        except TornadoHTTPError as e:
            raise HubUnavailable(str(e)) from e
        except OSError as e:
            raise HubUnavailable(str(e)) from e
        if not model:
            return None
        return Identity.from_hub_model(model, token=token)

    def allowed(self, ident: Identity) -> bool:
        """Whether the token's scopes include one of the service's access scopes (JupyterHub's own check)."""
        return bool(self.hub.check_scopes(self.hub.access_scopes, {"scopes": list(ident.scopes)}))

    def forget(self, token: str) -> None:
        digest = hashlib.sha256(token.encode("utf8", "replace")).hexdigest()
        self.hub.cache.pop(f"token::{digest}", None)

    # --- browser sessions -----------------------------------------------------
    def session_value(self, token: str) -> str:
        return self._signer.dumps(token)

    def token_from_session(self, value: str) -> str:
        """The token inside a session cookie; "" when the signature or age does not hold."""
        if not value:
            return ""
        try:
            token = self._signer.loads(value, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return ""
        return token if isinstance(token, str) else ""

    def token_of(self, request: Request) -> str:
        """The hub token of a request: ``Authorization: token|Bearer T`` or this service's session cookie."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            return value.strip() if scheme.lower() in ("token", "bearer") else ""
        return self.token_from_session(request.cookies.get(self.config.cookie_name, ""))

    # --- OAuth ------------------------------------------------------------------
    @property
    def oauth(self) -> HubOAuth:
        if not isinstance(self.hub, HubOAuth):
            raise HTTPException(404, "this service has no browser login")
        return self.hub

    def start_login(self, next_url: str) -> tuple[str, str]:
        """(authorize URL, state id): the state and PKCE verifier stay in ``HubOAuth``."""
        verifier, challenge, method = self.oauth.generate_pkce_code_challenge()
        state_id = self.oauth.generate_state(next_url, code_verifier=verifier)
        url = url_concat(self.oauth.login_url, {"state": state_id, "code_challenge": challenge,
                                                "code_challenge_method": method})
        return url, state_id

    async def finish_login(self, code: str, state_id: str) -> tuple[str, str]:
        """(token, next URL) for a returned code; the state is used once."""
        oauth = self.oauth
        next_url = oauth.get_next_url(state_id) or "/"
        verifier = oauth.get_code_verifier(state_id)
        oauth.clear_oauth_state(state_id)
        try:
            token = await oauth.token_for_code(code, code_verifier=verifier, sync=False)
        except TornadoHTTPError as e:
            raise HTTPException(403, f"login refused by the hub ({e.status_code})") from None
        except OSError as e:
            raise HubUnavailable(str(e)) from e
        return token, next_url


def token_from_request(request: Request, cookie_name: str | None = None) -> str:
    """The hub token of a request (header, or inside this service's signed session), e.g. to bind a CSRF token.

    ``cookie_name`` is accepted for older callers and ignored: the service's own cookie is the only one read.
    """
    return get_hub_auth(request).token_of(request)


def get_hub_auth(request: Request) -> ServiceAuth:
    auth = getattr(request.app.state, "hub_auth", None)
    if auth is None:  # a wiring error, never an open door
        raise HTTPException(503, "identity plane not configured")
    return auth


async def _resolve(request: Request) -> Identity | None:
    auth = get_hub_auth(request)
    try:
        return await auth.resolve(auth.token_of(request))
    except HubUnavailable:
        raise HTTPException(503, "the hub cannot be reached to check the caller's identity") from None


async def optional_identity(request: Request) -> Identity | None:
    """The caller when its token may use this service, else ``None`` (pages then send it to log in)."""
    ident = await _resolve(request)
    if ident is None or not get_hub_auth(request).allowed(ident):
        return None
    request.state.identity = ident
    return ident


async def current_identity(request: Request) -> Identity:
    """The caller; 401 without a valid token, 403 when the token lacks the service's access scope."""
    ident = await _resolve(request)
    if ident is None:
        raise HTTPException(401, "a valid JupyterHub token is required", headers={"WWW-Authenticate": "token"})
    auth = get_hub_auth(request)
    if not auth.allowed(ident):
        raise HTTPException(403, "this token does not grant access to this service (it needs the scope "
                                 f"{' or '.join(sorted(auth.config.access_scopes))})")
    request.state.identity = ident
    return ident


CurrentIdentity = Annotated[Identity, Depends(current_identity)]
OptionalIdentity = Annotated[Identity | None, Depends(optional_identity)]


def require_roles(*roles: str):
    """Dependency: a user holding one of ``roles`` (or an admin)."""

    async def dep(ident: CurrentIdentity) -> Identity:
        if not ident.has_role(*roles):
            raise HTTPException(403, f"requires one of the roles: {', '.join(roles)}")
        return ident

    return dep


def require_service(*names: str):
    """Dependency: one of the named platform services (never a user, not even an admin)."""

    async def dep(ident: CurrentIdentity) -> Identity:
        if not ident.is_service or ident.name not in names:
            raise HTTPException(403, f"only the platform services {', '.join(names)} may call this")
        return ident

    return dep


def _safe_next(next_url: str) -> str:
    return next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"


def login_router(cookie_path: str = "/") -> APIRouter:
    """``GET /login`` → the hub's OAuth; ``GET /oauth_callback`` → session cookie → back to ``next``."""
    router = APIRouter(include_in_schema=False)

    def state_cookie(auth: ServiceAuth) -> str:
        return auth.config.cookie_name + "-oauth-state"

    @router.get("/login")
    async def login(request: Request, next: str = "/"):
        auth = get_hub_auth(request)
        url, state_id = auth.start_login(_safe_next(next))
        resp = RedirectResponse(url, status_code=302)
        resp.set_cookie(state_cookie(auth), auth.session_value(state_id), httponly=True, samesite="lax",
                        max_age=600, path=cookie_path, secure=auth.config.cookie_secure)
        return resp

    @router.get("/oauth_callback")
    async def oauth_callback(request: Request, code: str = "", state: str = ""):
        auth = get_hub_auth(request)
        saved = auth.token_from_session(request.cookies.get(state_cookie(auth), ""))
        if not code or not state or not saved or not hmac.compare_digest(state, saved):
            raise HTTPException(400, "OAuth state mismatch: start the login again")
        try:
            token, next_url = await auth.finish_login(code, state)
        except HubUnavailable:
            raise HTTPException(503, "the hub cannot be reached") from None
        resp = RedirectResponse(_safe_next(next_url), status_code=302)
        resp.set_cookie(auth.config.cookie_name, auth.session_value(token), httponly=True, samesite="lax",
                        path=cookie_path, secure=auth.config.cookie_secure, max_age=SESSION_MAX_AGE)
        resp.delete_cookie(state_cookie(auth), path=cookie_path)
        return resp

    @router.get("/logout")
    async def logout(request: Request):
        auth = get_hub_auth(request)
        token = auth.token_from_session(request.cookies.get(auth.config.cookie_name, ""))
        if token:
            auth.forget(token)
        resp = RedirectResponse(f"{auth.config.public_hub_url}/hub/logout", status_code=302)
        resp.delete_cookie(auth.config.cookie_name, path=cookie_path)
        return resp

    return router


def install_hub_auth(app: FastAPI, config: HubAuthConfig) -> ServiceAuth:
    """Attach a :class:`ServiceAuth` to ``app`` (``app.state.hub_auth``)."""
    auth = ServiceAuth(config)
    app.state.hub_auth = auth
    return auth
