"""The side-effecting half of the local sandbox: folders, cgroups, the seccomp descriptor, processes.

What the sandbox is (its command line, environment and ``/etc`` files) is decided
by the pure ``hub/sandbox_spec.py``; the spawner's life cycle is ``hub/sandbox.py``.
Everything here acts on the machine, under these rules:

* root prepares and removes the home and the runtime folder by descriptor, never by
  a path through a folder the researcher can write (``hub/sandbox_fs.py``,
  ``hub/fsops.py``);
* the kernel enforces the profile's limits (``hub/limits.py``: cgroup v1 memory,
  cpu and pids; the command enters its cgroups before bubblewrap runs);
* the seccomp program (``hub/seccomp.py``) reaches bubblewrap as a memfd passed to
  it alone (``--seccomp FD``);
* a process is known by its pid *and* its start time (``/proc/PID/stat``), so a hub
  restart never mistakes a reused pid for the workspace.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hub import limits, sandbox_fs
from hub.plan import Resources, WorkspacePlan
from hub.sandbox_spec import etc_contents
from hub.seccomp import filter_bytes
from hub.spawner_base import WorkspaceRefused

SOCKET_PATH_MAX = 100  # a Unix socket path is limited to 107 bytes


def proc_start_time(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def proc_alive(pid: int, start_time: str | None) -> bool:
    st = proc_start_time(pid)
    if st is None or (start_time and st != start_time):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def prepare_home(home_root: str, plan: WorkspacePlan, mode: int, log=None) -> None:
    """``<home_root>/<user>/<project>``, by descriptor; a former single home is migrated (hub/sandbox_fs.py)."""
    try:
        path = sandbox_fs.prepare_home(home_root, plan.user, plan.project, plan.uid, plan.gid, mode, log=log)
    except OSError as e:
        raise WorkspaceRefused(f"the home folder cannot be prepared safely: {e}") from e
    if os.path.realpath(plan.home.source) != path:
        raise WorkspaceRefused(f"the plan's home {plan.home.source} is not {path}")


def prepare_runtime(runtime_root: str, plan: WorkspacePlan) -> str:
    """A fresh runtime folder under ``runtime_root`` with the plan's ``/etc`` files (hub/sandbox_fs.py)."""
    rd = sandbox_fs.prepare_runtime(runtime_root, plan.uid, plan.gid, etc_contents(plan))
    if len(f"{rd}/run/jupyter.sock") > SOCKET_PATH_MAX:
        sandbox_fs.remove_runtime(rd)
        raise WorkspaceRefused(f"runtime folder path too long for a Unix socket: {rd}")
    return rd


def seccomp_memfd() -> int:
    """A memfd holding the seccomp program (close-on-exec: ``pass_fds`` hands it to bubblewrap only)."""
    fd = os.memfd_create("insitu-seccomp")
    os.write(fd, filter_bytes())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def close_fds(fds: tuple[int, ...]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def workspace_cgroup(runtime_dir: str, parent: str) -> limits.WorkspaceCgroup:
    """The cgroups of the workspace whose runtime folder is ``runtime_dir`` (named after it)."""
    return limits.WorkspaceCgroup(os.path.basename(runtime_dir), parent=parent)


def enter_cgroup(cg: limits.WorkspaceCgroup, r: Resources, argv: list[str]) -> list[str]:
    """Make the workspace's cgroups with the profile's limits and wrap ``argv`` to enter them first."""
    cg.create(limits.plan_values(r.mem_limit, r.cpu_limit, r.cpu_guarantee, r.pids_limit))
    return limits.wrap_argv(cg.procs_files(), argv)


def launch(argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...]) -> subprocess.Popen:
    """Start the sandbox in its own session (process group), with nothing of the hub's but ``pass_fds``."""
    return subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        pass_fds=pass_fds,
    )


def signal_group(pid: int, proc: subprocess.Popen | None, sig: int) -> bool:
    """Signal the sandbox's process group; False when nothing of it is left."""
    if proc is not None:
        proc.poll()  # reap the outer bwrap, a zombie still counts as a member
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True
