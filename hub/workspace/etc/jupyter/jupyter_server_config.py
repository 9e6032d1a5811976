# Read-only configuration of every workspace server, beside jupyter_server_config.json.
# The desktop profile (INSITU_WORKSPACE_KIND=desktop) adds the remote desktop:
# jupyter-server-proxy relays the browser's websocket to the X server's Unix socket
# and the viewer page is served (both loaded by insitu_workspace, see desktop.py).
# Elsewhere jupyter-server-proxy stays off (jupyter_server_config.json), so no
# workspace proxies arbitrary local ports.
import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file
if os.environ.get("INSITU_WORKSPACE_KIND") == "desktop":
    from insitu_workspace.desktop import server_proxy_config

    c.ServerProxy.servers = server_proxy_config()
    c.ServerProxy.host_allowlist = []  # no /proxy/<port>: only the desktop's own socket
