"""The workspace gateway: the authenticating hop in front of a notebook server.

Everything inside a workspace belongs to the researcher, the notebook server
included: kernel code can remove the server's socket and bind its own. So the
proxy never routes to the server itself. It routes ``/user/<name>/`` to this
gateway, one per workspace, which runs outside the sandbox under its own uid
(``hub.sandbox``: started by the spawner as root, binds its socket in a
root-owned folder, then drops to the gateway uid; Kubernetes: a sidecar
container under another uid, ``hub.kube``). For every request, HTTP and
websocket, it

1. authenticates the caller with JupyterHub's own OAuth machinery
   (``jupyterhub.services.auth.HubOAuth`` as the server's OAuth client, the
   client JupyterHub creates for each server, with the server's API token as
   its secret), cookie or token, and requires the scope
   ``access:servers!server=<user>/<server>``; a browser without a session is
   sent to the hub's login, anyone else gets 403; nothing reaches the server;
2. refuses the download paths of ``hub.workspace.lockdown`` itself (the same
   rule as the server's lock-down, applied outside it);
3. forwards to the server's socket with the server's own API token, after
   checking with ``SO_PEERCRED`` that whatever listens there runs as the
   workspace's uid (a socket swapped for another user's or root's is refused
   before a byte is sent: ``hub/gateway_upstream.py``);
4. inspects every answer (``hub.sniff``): data files (DICOM, arrays, NIfTI,
   HDF5, archives, large binaries) never leave, whatever the path, and
   upstream ``Set-Cookie`` headers are dropped;
5. reports each refusal to the dataset service
   (``POST /api/sessions/<id>/refusals``), which traces it: the user's
   pseudonym, the session and a digest of the path, never the content.
   JupyterLab's own exporter probe (``GET api/nbconvert``) is refused without
   a report.

One route is the gateway's own, never forwarded: ``{base}insitu/export-status``, the
states of the owner's export requests for JupyterLab's exports panel (``hub/gateway_exports.py``).

Configuration: a JSON object on stdin (``--config-stdin``; the spawner's
root-only pipe), or ``JUPYTERHUB_*`` / ``INSITU_GATEWAY_*`` variables (the
Kubernetes sidecar). ``python -m hub.gateway --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from urllib.parse import urlparse

# everything is imported before the process drops its privileges (hub/gateway_upstream.py too)
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import httpclient, httputil, netutil, web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from hub import gateway_exports, sniff
from hub.http_linger import LingeringHTTPServer
from hub.gateway_upstream import MAX_BODY, Upstream, UpstreamRefused, UpstreamWebSocket
from hub.workspace.lockdown import is_blocked

log = logging.getLogger("insitu.gateway")

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "content-length", "content-encoding",
}
REFUSED_TEXT = "Downloads are refused in a workspace: use the export airlock."


@dataclass
class GatewayConfig:
    user: str
    base_url: str
    api_url: str
    api_token: str
    client_id: str
    oauth_redirect_uri: str
    server_name: str = ""
    hub_host: str = ""
    hub_prefix: str = "/hub/"
    listen: str = ""  # a Unix socket path, or "" with port
    port: int = 0
    address: str = "127.0.0.1"
    upstream: str = ""  # a Unix socket path, or "" with upstream_url
    upstream_url: str = ""  # http://127.0.0.1:8888 (Kubernetes)
    owner_uid: int | None = None  # SO_PEERCRED check of the Unix upstream
    run_as: tuple[int, int] | None = None
    report_url: str = ""
    report_token: str = ""
    session_id: str = ""
    project: str = ""  # the workspace's project (the exports panel's states are this project's)
    large: int = sniff.DEFAULT_LARGE
    cookie_options: dict = field(default_factory=dict)

    @property
    def access_scope(self) -> str:
        return f"access:servers!server={self.user}/{self.server_name}"

    @classmethod
    def from_dict(cls, d: dict) -> "GatewayConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if known.get("run_as"):
            known["run_as"] = tuple(known["run_as"])
        return cls(**known)

    @classmethod
    def from_env(cls, env=os.environ) -> "GatewayConfig":
        g = lambda k, d="": env.get(k, d)  # noqa: E731
        # the server's prefix; else the path of its OAuth callback (``<prefix>oauth_callback``)
        base = g("JUPYTERHUB_SERVICE_PREFIX") or urlparse(g("JUPYTERHUB_OAUTH_CALLBACK_URL")).path.rsplit("oauth_callback", 1)[0]
        return cls(
            user=g("JUPYTERHUB_USER"), server_name=g("JUPYTERHUB_SERVER_NAME"),
            base_url=base or "/", api_url=g("JUPYTERHUB_API_URL"),
            api_token=g("JUPYTERHUB_API_TOKEN"), client_id=g("JUPYTERHUB_CLIENT_ID"),
            oauth_redirect_uri=g("JUPYTERHUB_OAUTH_CALLBACK_URL"), hub_host=g("JUPYTERHUB_HOST"),
            hub_prefix=g("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/",
            port=int(g("INSITU_GATEWAY_PORT", "8080")), address=g("INSITU_GATEWAY_ADDRESS", "0.0.0.0"),
            upstream_url=g("INSITU_GATEWAY_UPSTREAM", "http://127.0.0.1:8888"),
            report_url=g("INSITU_GATEWAY_REPORT_URL"), report_token=g("INSITU_GATEWAY_REPORT_TOKEN"),
            session_id=g("INSITU_SESSION_ID"), project=g("INSITU_PROJECT"),
            large=int(g("INSITU_GATEWAY_LARGE", str(sniff.DEFAULT_LARGE))),
        )


# --------------------------------------------------------------------------
# handlers
# --------------------------------------------------------------------------


class _Base(HubOAuthenticated):
    gw: "Gateway"

    def initialize(self, gw):
        self.gw = gw
        self.hub_auth = gw.auth

    @property
    def hub_scopes(self):
        return {self.gw.cfg.access_scope}

    async def identify(self) -> None:
        if hasattr(self, "_hub_auth_user_cache"):
            return
        self.denied = None
        model = await self.hub_auth.get_user(self, sync=False)
        if model:
            try:
                model = self.check_hub_user(model)
            except UserNotAllowed:
                self.denied, model = model, None
        self._hub_auth_user_cache = model

    def _require_owner(self) -> bool:
        if self.current_user:
            return True
        is_ws = self.request.headers.get("Upgrade", "").lower() == "websocket"
        if self.denied is None and self.request.method in ("GET", "HEAD") and not is_ws:
            self.redirect(self.get_login_url())
            return False
        who = f" ({self.denied.get('kind', 'user')} {self.denied.get('name')})" if self.denied else ""
        self._plain(403, f"Only the owner of this workspace may use it{who}.")
        return False

    def _plain(self, code: int, text: str) -> None:
        self.clear()
        self.set_status(code)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text + "\n")


class CallbackHandler(_Base, HubOAuthCallbackHandler):
    pass


class ExportStatusHandler(_Base, gateway_exports.ExportStatus):
    async def prepare(self):
        await self.identify()


class GatewayHandler(_Base, WebSocketHandler):
    def initialize(self, gw):
        super().initialize(gw)
        self.upstream_ws = None

    async def prepare(self):
        await self.identify()

    def check_origin(self, origin):  # websockets: the page must come from this origin
        return super().check_origin(origin)

    # -- HTTP ---------------------------------------------------------------
    async def get(self, *args):
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            if not self._require_owner():
                return
            try:
                await self._open_upstream_ws()
            except (UpstreamRefused, OSError, httpclient.HTTPClientError, StreamClosedError) as e:
                log.warning("websocket upstream refused for %s: %s", self.request.path, e)
                self._plain(502, "The workspace's server is not available.")
                return
            await super().get(*args)
            return
        await self._http()

    async def head(self, *args):
        await self._http()

    post = put = patch = delete = options = head

    def _upstream_headers(self) -> httputil.HTTPHeaders:
        h = httputil.HTTPHeaders()
        for k, v in self.request.headers.get_all():
            if k.lower() in HOP_BY_HOP or k.lower() in ("authorization", "cookie", "accept-encoding"):
                continue
            h.add(k, v)
        h["Authorization"] = f"token {self.gw.cfg.api_token}"
        h["Accept-Encoding"] = "identity"
        return h

    async def _http(self):
        if not self._require_owner():
            return
        cfg = self.gw.cfg
        rel = sniff.relative(self.request.path, cfg.base_url)
        if is_blocked(self.request.path, self.request.query_arguments, cfg.base_url):
            probe = rel == "api/nbconvert" and self.request.method == "GET"
            if not probe:
                await self.gw.report(rel, "download-path", "lockdown")
            return self._plain(403, REFUSED_TEXT)
        if self.request.method in ("GET", "HEAD") and self.request.headers.get("Sec-Fetch-Mode", "navigate") == "navigate":
            self.xsrf_token  # noqa: B018  (sets the _xsrf cookie the lab sends back)
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        if self.request.method in ("DELETE", "OPTIONS") and self.request.body:
            body = self.request.body
        req = httpclient.HTTPRequest(
            self.gw.upstream.origin + self.request.uri, method=self.request.method, headers=self._upstream_headers(),
            body=body, follow_redirects=False, decompress_response=False, allow_nonstandard_methods=True,
            request_timeout=600, connect_timeout=10,
        )
        client = self.gw.upstream.http_client()
        try:
            resp = await client.fetch(req, raise_error=False)
        except (UpstreamRefused, OSError, StreamClosedError) as e:
            log.warning("upstream refused for %s: %s", self.request.path, e)
            return self._plain(502, "The workspace's server is not available.")
        finally:
            client.close()
        if resp.code == 599:
            return self._plain(502, "The workspace's server is not available.")
        data = resp.body or b""
        verdict = sniff.inspect(rel, resp.headers.get("Content-Type", ""), data, large=cfg.large)
        if verdict:
            kind, channel = verdict
            await self.gw.report(rel, kind, channel)
            return self._plain(403, REFUSED_TEXT)
        self.set_status(resp.code, resp.reason)
        self._headers = httputil.HTTPHeaders()  # only what the server sent
        for k, v in resp.headers.get_all():
            if k.lower() in HOP_BY_HOP or k.lower() == "set-cookie":
                continue
            self.add_header(k, v)
        if self.request.method != "HEAD" and data and resp.code not in (204, 304):
            self.write(data)
        self.finish()

    # -- websockets -------------------------------------------------------
    async def _open_upstream_ws(self):
        proto = self.request.headers.get("Sec-WebSocket-Protocol")
        subprotocols = [p.strip() for p in proto.split(",")] if proto else None
        headers = self._upstream_headers()
        for k in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"):
            headers.pop(k, None)
        url = self.gw.upstream.origin.replace("http", "ws", 1) + self.request.uri
        req = httpclient.HTTPRequest(url, headers=headers, connect_timeout=10, request_timeout=30)
        conn = UpstreamWebSocket(req, self.gw.upstream.tcp_client(), subprotocols=subprotocols,
                                  max_message_size=MAX_BODY)
        self.upstream_ws = await conn.connect_future

    def select_subprotocol(self, subprotocols):
        return self.upstream_ws.selected_subprotocol if self.upstream_ws else None

    def open(self, *args):
        asyncio.ensure_future(self._pump())

    async def _pump(self):
        try:
            while True:
                msg = await self.upstream_ws.read_message()
                if msg is None:
                    break
                await self.write_message(msg, binary=isinstance(msg, bytes))
        except (WebSocketClosedError, StreamClosedError):
            pass
        finally:
            self.close()

    async def on_message(self, message):
        if self.upstream_ws is None:
            return
        try:
            await self.upstream_ws.write_message(message, binary=isinstance(message, bytes))
        except (WebSocketClosedError, StreamClosedError):
            self.close()

    def on_close(self):
        if self.upstream_ws is not None:
            self.upstream_ws.close()

    def get_compression_options(self):
        return None


class NotHere(web.RequestHandler):
    def prepare(self):
        self.set_status(404)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("Not found.\n")


# --------------------------------------------------------------------------
# the application
# --------------------------------------------------------------------------


class _GatewayOAuth(HubOAuth):
    """HubOAuth with one relaxation of its XSRF rule: a browser's same-origin,
    read-only fetch of a *script* (ES module imports are CORS-mode fetches, so
    the desktop viewer's noVNC modules could never load) is accepted on the
    cookie. ``Sec-Fetch-*`` are forbidden headers that page scripts cannot set,
    and with per-user origins "same-origin" means the owner's own pages; every
    other cookie request keeps JupyterHub's full check."""

    def check_xsrf_cookie(self, handler):
        h = handler.request.headers
        if (handler.request.method in ("GET", "HEAD") and h.get("Sec-Fetch-Site") == "same-origin"
                and h.get("Sec-Fetch-Mode") == "cors" and h.get("Sec-Fetch-Dest") == "script"):
            return
        return super().check_xsrf_cookie(handler)


class Gateway:
    def __init__(self, cfg: GatewayConfig):
        self.cfg = cfg
        self.upstream = Upstream(cfg.upstream, cfg.upstream_url, cfg.owner_uid)
        self.auth = _GatewayOAuth(
            api_url=cfg.api_url, api_token=cfg.api_token, oauth_client_id=cfg.client_id,
            oauth_redirect_uri=cfg.oauth_redirect_uri, base_url=cfg.base_url, hub_prefix=cfg.hub_prefix,
            hub_host=cfg.hub_host, access_scopes={cfg.access_scope}, cache_max_age=60,
            cookie_options=dict(cfg.cookie_options),
        )
        self.reports: list[dict] = []

    def app(self) -> web.Application:
        base = self.cfg.base_url.rstrip("/")
        import re

        b = re.escape(base)
        return web.Application(
            [
                (rf"{b}/oauth_callback", CallbackHandler, {"gw": self}),
                (rf"{b}/{gateway_exports.ROUTE}", ExportStatusHandler, {"gw": self}),
                (rf"{b}(/.*)?", GatewayHandler, {"gw": self}),
                (r".*", NotHere),
            ],
            cookie_secret=secrets.token_bytes(32),
            websocket_max_message_size=MAX_BODY,
            xsrf_cookies=False,
        )

    async def report(self, rel_path: str, kind: str, channel: str) -> None:
        """Have the refusal traced (the path only as a digest)."""
        digest = hashlib.sha256(rel_path.encode("utf-8", "surrogateescape")).hexdigest()
        body = {"kind": kind, "channel": channel, "path_digest": digest}
        self.reports.append(body)
        log.warning("refused %s (%s) for %s: path digest %s", kind, channel, self.cfg.user, digest)
        if not (self.cfg.report_url and self.cfg.session_id):
            log.error("refusal not traced: no dataset service or session configured")
            return
        url = f"{self.cfg.report_url.rstrip('/')}/api/sessions/{self.cfg.session_id}/refusals"
        client = httpclient.AsyncHTTPClient(force_instance=True)
        try:
            resp = await client.fetch(url, method="POST", body=json.dumps(body), raise_error=False,
                                      headers={"Authorization": f"token {self.cfg.report_token}",
                                               "Content-Type": "application/json"}, request_timeout=10)
            if resp.code >= 300:
                log.error("refusal not traced: the dataset service answered %s", resp.code)
        except Exception as e:  # noqa: BLE001 - a report never breaks the refusal
            log.error("refusal not traced: %s", e)
        finally:
            client.close()


def preload(gw: "Gateway") -> None:
    """Import now what the gateway would otherwise import on first use.

    Once it has dropped privileges the gateway may no longer read its own installation (a checkout in
    a folder only root may read), and a late import would turn a refusal into a 500. HubAuth's logger
    is the one such import (``traitlets.log``): it is first used when a cookie request fails the XSRF
    check, as a cross-site form's would."""
    gw.auth.log  # noqa: B018


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("could not drop privileges")


async def serve(cfg: GatewayConfig) -> None:
    gw = Gateway(cfg)
    server = LingeringHTTPServer(gw.app(), xheaders=True, max_body_size=MAX_BODY, max_buffer_size=MAX_BODY)
    if cfg.listen:
        sock = netutil.bind_unix_socket(cfg.listen, mode=0o600)
        server.add_socket(sock)
    else:
        server.listen(cfg.port, cfg.address)
    preload(gw)
    if cfg.run_as and os.getuid() == 0:
        drop_privileges(*cfg.run_as)
    log.info("gateway for %s on %s -> %s (uid %s)", cfg.user, cfg.listen or f"{cfg.address}:{cfg.port}",
             cfg.upstream or cfg.upstream_url, os.getuid())
    print("ready", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hub.gateway", description=__doc__.split("\n\n")[0])
    p.add_argument("--config-stdin", action="store_true", help="read the configuration (JSON) from stdin")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(message)s")
    cfg = GatewayConfig.from_dict(json.loads(sys.stdin.read())) if args.config_stdin else GatewayConfig.from_env()
    try:
        asyncio.run(serve(cfg))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
