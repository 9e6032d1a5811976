"""Kernel-enforced limits of a local workspace: cgroup v1 memory, cpu and pids.

This machine mounts the cgroup v1 controllers one per folder
(``/sys/fs/cgroup/memory``, ``/sys/fs/cgroup/cpu``, ``/sys/fs/cgroup/pids``).
Each workspace gets one cgroup per controller, ``<parent>/insitu-<name>``,
below the hub's own cgroup of that controller (so whatever limits the hub's
service has also hold for its workspaces):

* memory: ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes`` when
  swap accounting exists) = the profile's ``mem_limit``; over it the kernel's
  OOM killer kills a process *of the workspace*, never anything outside;
* cpu: ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` = ``cpu_limit`` cores,
  ``cpu.shares`` from ``cpu_guarantee``;
* pids: ``pids.max`` = the profile's ``pids_limit`` (a fork bomb stops there).

The sandbox's first process enters the cgroups before it executes anything
(``wrap_argv``: a shell writes its own pid into each ``cgroup.procs`` and then
``exec``s bubblewrap, so every later process of the workspace is born inside).
``remove_once`` (``remove``, blocking) kills whatever is left in them and removes the folders on stop.
``plan_values`` is pure; the rest touches only ``/sys/fs/cgroup``.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CGROUP_ROOT", "CONTROLLERS", "plan_values", "own_cgroup", "WorkspaceCgroup", "wrap_argv"]

CGROUP_ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("memory", "cpu", "pids")
CFS_PERIOD_US = 100_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")


def plan_values(mem_limit: int, cpu_limit: float, cpu_guarantee: float, pids_limit: int,
                *, swap_accounting: bool = True) -> dict[str, dict[str, str]]:
    """What to write, by controller and file, for these limits. Pure."""
    if mem_limit < 16 * 1024 * 1024:
        raise ValueError("mem_limit below 16 MiB")
    if cpu_limit <= 0 or pids_limit < 8:
        raise ValueError("cpu_limit must be positive and pids_limit at least 8")
    mem = {"memory.limit_in_bytes": str(int(mem_limit))}
    if swap_accounting:
        mem["memory.memsw.limit_in_bytes"] = str(int(mem_limit))  # no swapping past the limit
    return {
        "memory": mem,
        "cpu": {
            "cpu.cfs_period_us": str(CFS_PERIOD_US),
            "cpu.cfs_quota_us": str(max(1000, int(round(cpu_limit * CFS_PERIOD_US)))),
            "cpu.shares": str(max(2, int(round(max(cpu_guarantee, 0.002) * 1024)))),
        },
        "pids": {"pids.max": str(int(pids_limit))},
    }


def own_cgroup(controller: str, proc_cgroup: str | None = None) -> str:
    """This process's cgroup path (e.g. ``/`` or ``/process_api/x``) in ``controller``."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return path or "/"
    raise LookupError(f"the {controller} controller is not mounted (cgroup v1)")


def wrap_argv(procs_files: list[str], argv: list[str]) -> list[str]:
    """``argv`` run by a shell that first moves itself into each cgroup (fails with 125 if it cannot)."""
    script = ('while [ "$1" != "--" ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"')
    return ["/bin/sh", "-c", script, "insitu-cgroup-enter", *procs_files, "--", *argv]


@dataclass
class WorkspaceCgroup:
    """The cgroups of one workspace (``name`` unique per workspace)."""

    name: str
    parent: str = ""  # "" = below the hub's own cgroup of each controller
    root: str = CGROUP_ROOT

    def __post_init__(self):
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"bad cgroup name {self.name!r}")

    def path(self, controller: str) -> str:
        parent = self.parent or own_cgroup(controller)
        return os.path.join(self.root, controller, parent.lstrip("/"), f"insitu-{self.name}")

    def procs_files(self) -> list[str]:
        return [os.path.join(self.path(c), "cgroup.procs") for c in CONTROLLERS]

    def create(self, values: dict[str, dict[str, str]]) -> None:
        """Make the cgroups and write the limits; any failure removes what was made and raises."""
        try:
            for c in CONTROLLERS:
                p = self.path(c)
                os.makedirs(p, exist_ok=True)
                for f, v in values.get(c, {}).items():
                    if f == "memory.memsw.limit_in_bytes" and not os.path.exists(os.path.join(p, f)):
                        continue  # no swap accounting on this kernel
                    with open(os.path.join(p, f), "w") as fh:
                        fh.write(v)
        except OSError:
            self.remove()
            raise

    def pids(self) -> set[int]:
        out: set[int] = set()
        for c in CONTROLLERS:
            try:
                out |= {int(x) for x in Path(self.path(c), "cgroup.procs").read_text().split()}
            except (OSError, LookupError):
                pass
        return out

    def read(self, controller: str, name: str) -> str:
        return Path(self.path(controller), name).read_text()

    def remove_once(self) -> bool:
        """Kill every process left in the cgroups and try to remove them. True when all are gone.

        A killed process leaves its cgroup a moment later: call again until True (the hub awaits it with
        ``hub.aiowait.wait_until``; ``remove`` sleeps, for callers outside an event loop)."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        gone = True
        for c in CONTROLLERS:
            try:
                p = self.path(c)
            except LookupError:
                continue
            try:
                os.rmdir(p)
            except FileNotFoundError:
                pass
            except OSError:
                gone = False
        return gone

    def remove(self, timeout: float = 5.0) -> bool:
        """``remove_once`` until it succeeds or ``timeout`` seconds have passed (blocking)."""
        deadline = time.monotonic() + timeout
        while not self.remove_once():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
