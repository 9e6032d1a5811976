"""What a local sandbox gives the researcher besides isolation. Pure.

* ``user_env(home, workspace_env)``: the variables that point Jupyter, JupyterLab,
  pip and the shell at the researcher's own, writable folders in the home, while
  the platform's lock-down stays where the researcher cannot change it:

  - ``JUPYTER_CONFIG_DIR`` is ``~/.jupyter`` (writable). jupyter_core writes its
    IPython-migration marker there at every start once ``~/.ipython`` exists, and
    JupyterLab keeps its user settings and workspaces (layout) below it. Pointing
    it at the read-only platform folder made every second start fail.
  - The platform's configuration (``/opt/insitu/etc/jupyter``, read-only) is the
    ``JUPYTER_CONFIG_PATH`` entry; ``JUPYTERHUB_DISABLE_USER_CONFIG=1`` makes
    jupyterhub-singleuser drop every configuration folder inside the home from
    the server's configuration search path before any file is read
    (``jupyterhub.singleuser._disable_user_config``), so a researcher's
    ``~/.jupyter/jupyter_server_config.*`` cannot switch the lock-down off.
  - ``PATH`` starts with the workspace environment (``python``, ``pip``), then the
    platform's commands (``insitu-export``) and ``~/.local/bin``.
  - pip installs into ``~/.local`` (``PIP_PREFIX``), visible to the kernels through
    ``PYTHONPATH``, from the platform's curated package index only
    (``PIP_INDEX_URL``, a loopback relay inside the sandbox to the hub-side index;
    ``hub/package_index.py``).

* ``shm_args(size)``: a private, writable ``/dev/shm`` (tmpfs of ``size`` bytes), which
  Python's multiprocessing needs for its semaphores (PyTorch ``DataLoader`` workers,
  MONAI ``CacheDataset``).
* ``EXAMPLES_IN_SANDBOX``: where the example notebooks are bound read-only; the
  workspace copies them into the home once (``hub/workspace/examples.py``).
* ``core_binds()``: the core package ``insitu/``, bound read-only beside
  ``insitu_workspace`` (as the notebook and desktop images copy it): the workspace
  library checks datasets with the core's own manifest and Merkle rules
  (``insitu.manifest``, standard library only), not with a copy of them.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = str(REPO / "notebooks")
EXAMPLES_IN_SANDBOX = "/opt/insitu/examples"
PLATFORM_BIN = "/opt/insitu/python/insitu_workspace/bin"
CORE_DIR = str(REPO / "insitu")
CORE_IN_SANDBOX = "/opt/insitu/python/insitu"
INDEX_RELAY_PORT = 3141  # loopback of the workspace's own network namespace
PY_VERSION = "python3.11"
SHM_DEFAULT = 512 * 1024**2


def user_env(home: str, workspace_env: str) -> dict[str, str]:
    """Environment variables of a workspace that depend on its home (see module doc)."""
    home = home.rstrip("/")
    cfg = f"{home}/.jupyter"
    env = {
        "PATH": f"{workspace_env}/bin:{PLATFORM_BIN}:{home}/.local/bin:/usr/local/bin:/usr/bin:/bin",
        "JUPYTER_CONFIG_DIR": cfg,
        "JUPYTERLAB_SETTINGS_DIR": f"{cfg}/lab/user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": f"{cfg}/lab/workspaces",
        "JUPYTERHUB_DISABLE_USER_CONFIG": "1",
        "PIP_PREFIX": f"{home}/.local",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CACHE_DIR": f"{home}/.cache/pip",
        "INSITU_USER_SITE": f"{home}/.local/lib/{PY_VERSION}/site-packages",
        "INSITU_EXAMPLES": EXAMPLES_IN_SANDBOX,
        # the platform's JupyterLab extension (notices, "Request export…"), read-only
        "JUPYTER_PATH": "/opt/insitu/python/insitu_workspace/share/jupyter",
        # the only index: the hub's curated one, relayed on the workspace's own loopback (nothing from outside)
        "PIP_INDEX_URL": f"http://127.0.0.1:{INDEX_RELAY_PORT}/simple/",
        "PIP_TRUSTED_HOST": "127.0.0.1",
        "INSITU_INDEX_SOCKET": "/run/insitu-index/index.sock",
        "INSITU_INDEX_PORT": str(INDEX_RELAY_PORT),
    }
    return env


def shm_size_for(mem_limit: int | None) -> int:
    """A quarter of the memory limit (tmpfs pages count as the workspace's memory), at most 2 GiB."""
    if not mem_limit:
        return SHM_DEFAULT
    return max(64 * 1024**2, min(2 * 1024**3, int(mem_limit) // 4))


def shm_args(size: int) -> list[str]:
    """bubblewrap arguments for a private writable /dev/shm (after ``--dev /dev``)."""
    return ["--perms", "1777", "--size", str(int(size)), "--tmpfs", "/dev/shm"]


def core_binds(core_dir: str = CORE_DIR) -> tuple[tuple[str, str], ...]:
    """Read-only bind of the core package (see module doc)."""
    return ((core_dir, CORE_IN_SANDBOX),)


def example_binds(examples_dir: str = EXAMPLES_DIR) -> tuple[tuple[str, str], ...]:
    """Read-only binds of the platform's example notebooks."""
    return ((examples_dir, EXAMPLES_IN_SANDBOX),) if Path(examples_dir).is_dir() else ()
