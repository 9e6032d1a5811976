"""The desktop's viewer page and noVNC's client code, served by the workspace's
jupyter-server behind its authentication (see ``desktop.py``).

``{base}insitu/desktop``           the viewer page (noVNC's RFB client, no clipboard UI)
``{base}insitu/desktop/novnc/...`` Debian's noVNC modules (``/usr/share/novnc``, public code)

The page keeps what the server sends to the browser's clipboard channel in
``window.insituClipboard`` (for the tests: it must stay empty) and never
writes to the browser's clipboard.
"""

from __future__ import annotations

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .desktop import NOVNC_DIR, PAGE_PATH, PROXY_NAME

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Desktop · insitu</title>
<style>
html,body{{margin:0;height:100%;background:#1d2330;color:#e8ecf3;font:14px system-ui,sans-serif}}
#bar{{height:28px;line-height:28px;padding:0 10px;background:#0f1420}}
#screen{{position:absolute;top:28px;left:0;right:0;bottom:0}}
</style></head>
<body>
<div id="bar">Desktop · <span id="status" role="status">connecting…</span>
 · copy-out is off: nothing copied in the desktop reaches this browser</div>
<div id="screen"></div>
<script type="module">
import RFB from "./desktop/novnc/core/rfb.js";
const status = document.getElementById("status");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const url = scheme + location.host + {ws_path!r};
window.insituClipboard = [];
window.insituConnected = false;
const rfb = new RFB(document.getElementById("screen"), url);
rfb.scaleViewport = true;
rfb.addEventListener("connect", () => {{ status.textContent = "connected"; window.insituConnected = true; }});
rfb.addEventListener("disconnect", (e) => {{
  window.insituConnected = false;
  status.textContent = e.detail.clean ? "disconnected" : "the desktop has stopped";
}});
rfb.addEventListener("clipboard", (e) => {{ window.insituClipboard.push(e.detail.text); }});
window.insituRFB = rfb;
</script></body></html>
"""


class DesktopPageHandler(JupyterHandler):
    @web.authenticated
    def get(self):
        ws_path = url_path_join(self.base_url, PROXY_NAME) + "/"
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(PAGE.format(ws_path=ws_path))


def install(web_app, base_url: str) -> None:
    page = url_path_join(base_url, PAGE_PATH)
    web_app.add_handlers(
        ".*$",
        [
            (page, DesktopPageHandler),
            # Debian's noVNC code, public and the same for everyone: no login needed (and none possible:
            # ES module imports are CORS-mode fetches, which cookie authentication refuses without XSRF)
            (page + "/novnc/(.*)", web.StaticFileHandler, {"path": NOVNC_DIR}),
        ],
    )


def load_desktop(serverapp) -> None:
    """Called by the ``insitu_workspace`` extension in a desktop workspace: the
    websocket relay to the X server (jupyter-server-proxy, configured by
    ``etc/jupyter/jupyter_server_config.py``) and the viewer page."""
    import jupyter_server_proxy

    jupyter_server_proxy._load_jupyter_server_extension(serverapp)
    install(serverapp.web_app, serverapp.base_url)
    serverapp.log.info("insitu desktop: viewer at %s%s", serverapp.base_url, PAGE_PATH)
