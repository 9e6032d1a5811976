"""What runs INSIDE a workspace (the notebook server's side).

This folder imports only itself (relative imports) and the core's
standard-library rules (``insitu.manifest``): the local sandbox binds it
read-only at ``/opt/insitu/python/insitu_workspace`` and the core beside it at
``/opt/insitu/python/insitu`` (``hub/sandbox_workspace.py``), the notebook and
desktop images copy both there, so the server loads it as the jupyter-server
extension ``insitu_workspace``. ``etc/jupyter`` is the read-only platform configuration
(``JUPYTER_CONFIG_PATH``): it enables the extension and disables JupyterLab's
download and export plugins. ``bin/`` holds the workspace's commands
(``insitu-export``, ``insitu-datasets``), on the workspace's PATH.

At load the extension installs the download lock-down (``lockdown.py``) and the
API of the JupyterLab extension (``labapi.py``: stop notices, "Request export…", the datasets panel),
starts terminals as non-login shells (so PATH keeps the workspace environment
first), lets kernels and terminals see the packages the researcher installed
with pip into ``~/.local`` (the server itself keeps the platform's packages
only: its import path is fixed when it starts), serves the desktop viewer in a
desktop workspace (``desktop_page.py``) and copies the example notebooks into a
new home (``examples.py``). When the server has started it relays a loopback
port to the hub's curated package index (``pkgrelay.py``), so that pip works
without a network.
"""

import os


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _user_site_for_children(environ=os.environ) -> None:
    site = environ.get("INSITU_USER_SITE")
    if not site:
        return
    parts = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if site not in parts:
        environ["PYTHONPATH"] = os.pathsep.join(parts + [site])


def _terminal_shell(serverapp) -> None:
    """Terminals run an interactive, non-login bash: a login shell reads /etc/profile, which
    resets PATH to the system's and hides the workspace environment's python and pip.
    (Loaded before jupyter_server_terminals, which reads the setting at its own load.)"""
    settings = dict(serverapp.terminado_settings or {})
    settings.setdefault("shell_command", ["/bin/bash", "-i"])
    serverapp.terminado_settings = settings


_relay = []


async def _start_jupyter_server_extension(serverapp):
    """Relay the workspace's loopback port to the hub's curated package index (pkgrelay.py)."""
    from .pkgrelay import start_relay

    try:
        server = await start_relay(os.environ.get("INSITU_INDEX_SOCKET", ""),
                                   int(os.environ.get("INSITU_INDEX_PORT") or 3141))
    except OSError as e:
        serverapp.log.warning("insitu: package index relay not started: %s", e)
        return
    if server is not None:
        _relay.append(server)
        serverapp.log.info("insitu: curated package index on 127.0.0.1 for pip")


def _load_jupyter_server_extension(serverapp):
    from .lockdown import _load_jupyter_server_extension as load

    load(serverapp)
    from .labapi import install as install_lab_api

    install_lab_api(serverapp)  # notices and "Request export…" of the JupyterLab extension
    _terminal_shell(serverapp)
    _user_site_for_children()
    if os.environ.get("INSITU_WORKSPACE_KIND") == "desktop":
        from .desktop_page import load_desktop

        load_desktop(serverapp)
    try:
        from .examples import install_examples

        copied = install_examples(os.path.expanduser("~"), os.environ.get("INSITU_EXAMPLES"))
        if copied:
            serverapp.log.info("insitu: example notebooks copied into ~/examples: %s", ", ".join(copied))
    except OSError as e:  # a full or odd home must not stop the server
        serverapp.log.warning("insitu: example notebooks not copied: %s", e)
