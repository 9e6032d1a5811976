"""The workspace gateway of the local sandbox: folders, process, life cycle.

Two more folders in a workspace's runtime folder (``hub/sandbox_fs.py``),
made by descriptor from the root-owned runtime folder::

    <runtime>/srv/   the researcher's uid, group = the gateway's gid, 2750:
                     bound at /run/insitu-server; the notebook server listens on
                     jupyter.sock there (mode 0660: the gateway's group may connect)
    <runtime>/gw/    root, 0700: gateway.sock, the only address the proxy knows

The researcher can remove or replace anything in ``srv/``: that is their own
server. They cannot touch ``gw/`` nor rename ``srv/`` (its parent is root's).
The gateway (``hub/gateway.py``) is started by the spawner as root with its
configuration on a pipe, binds ``gw/gateway.sock``, then runs as the gateway
uid, which is not the researcher's: kernel code can neither signal nor trace
it. It connects to ``srv/jupyter.sock`` as that uid and checks with
``SO_PEERCRED`` that the listener runs as the workspace's uid.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

from hub.aiowait import wait_until
from hub.fsops import mkdir_at, open_dir_at, open_trusted_dir

SERVER_DIR = "srv"
GATEWAY_DIR = "gw"
SERVER_IN_SANDBOX = "/run/insitu-server"
SERVER_SOCKET = "jupyter.sock"
GATEWAY_SOCKET = "gateway.sock"


def prepare_dirs(runtime_dir: str, owner_uid: int, gateway_gid: int) -> None:
    """Create ``srv/`` and ``gw/`` in a fresh runtime folder (layout above)."""
    rfd = open_trusted_dir(runtime_dir)
    try:
        os.close(mkdir_at(rfd, SERVER_DIR, 0o2750, (owner_uid, gateway_gid)))
        os.close(mkdir_at(rfd, GATEWAY_DIR, 0o700, (0, 0)))
    finally:
        os.close(rfd)


def gateway_socket(runtime_dir: str) -> str:
    return os.path.join(runtime_dir, GATEWAY_DIR, GATEWAY_SOCKET)


def server_socket(runtime_dir: str) -> str:
    return os.path.join(runtime_dir, SERVER_DIR, SERVER_SOCKET)


def server_listening(runtime_dir: str) -> bool:
    """Is there a socket at ``srv/jupyter.sock``? (looked up by descriptor, never followed)"""
    try:
        rfd = open_trusted_dir(runtime_dir)
    except OSError:
        return False
    try:
        sfd = open_dir_at(rfd, SERVER_DIR)
        try:
            st = os.stat(SERVER_SOCKET, dir_fd=sfd, follow_symlinks=False)
        finally:
            os.close(sfd)
    except OSError:
        return False
    finally:
        os.close(rfd)
    return stat.S_ISSOCK(st.st_mode)


def gateway_listening(runtime_dir: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(gateway_socket(runtime_dir), follow_symlinks=False).st_mode)
    except OSError:
        return False


def start_gateway(config: dict, *, python: str = sys.executable, cwd: str | None = None) -> subprocess.Popen:
    """Start ``python -m hub.gateway --config-stdin`` with ``config`` on its stdin."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": cwd or "", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(
        [python, "-m", "hub.gateway", "--config-stdin"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        env=env, cwd=cwd, start_new_session=True, close_fds=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(config).encode())
    proc.stdin.close()
    return proc


async def wait_listening(runtime_dir: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    if await wait_until(lambda: gateway_listening(runtime_dir) or proc.poll() is not None, timeout):
        if gateway_listening(runtime_dir):
            return
        raise RuntimeError(f"the workspace gateway exited (status {proc.returncode}); see the hub log")
    raise RuntimeError("the workspace gateway did not start")


async def stop_gateway(pid: int, alive, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, the gateway's process group (``alive()`` says whether it is still there)."""
    if not pid or not alive():
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not await wait_until(lambda: not alive(), grace):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
