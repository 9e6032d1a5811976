"""What runs INSIDE a workspace (the notebook server's side).

This folder is self-contained (relative imports only): the local sandbox binds
it read-only at ``/opt/insitu/python/insitu_workspace`` and the notebook image
copies it there, so the server loads it as the jupyter-server extension
``insitu_workspace``. ``etc/jupyter`` is the read-only ``JUPYTER_CONFIG_DIR``
of the workspace: it enables the extension and disables JupyterLab's download
and export plugins.
"""


def _jupyter_server_extension_points():
    return [{"module": __name__ + ".lockdown"}]


def _load_jupyter_server_extension(serverapp):
    from .lockdown import _load_jupyter_server_extension as load

    load(serverapp)
