"""LocalSandboxSpawner: the workspace plan rendered on this machine.

Three modules, one concern each:

* ``hub/sandbox_spec.py`` (pure, golden tests): what the sandbox is for a plan:
  the bubblewrap + ``setpriv`` command line (own uid, exactly the plan's dataset
  gids, no capabilities, ``no_new_privs``; read-only lake, datasets, ``/usr``;
  a writable home; loopback-only network), its environment and ``/etc`` files;
* ``hub/sandbox_run.py`` (side effects): the home and runtime folders by
  descriptor, never by a path through a folder the researcher can write
  (``hub/sandbox_fs.py``), the kernel's limits (``hub/limits.py``: cgroup v1
  memory, cpu and pids; ``/tmp`` is a tmpfs of ``tmp_limit`` bytes), the seccomp
  filter's descriptor (``hub/seccomp.py``), the processes;
* this module: the spawner's options, state and life cycle: the dataset session
  (``hub/spawner_base.py``), the hub API forwarder (``hub/forwarder.py``), the
  package index (``hub/package_index.py``), the workspace gateway
  (``hub/gateway.py``, ``hub/gateway_local.py``), then the sandbox itself. It
  waits for the sandbox and its gateway without blocking the hub's event loop
  (``hub/aiowait.py``).

State (``get_state``): pid and its start time (to survive a hub restart and to
never mistake a reused pid), the runtime folder, the session and the plan.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from jupyterhub.spawner import Spawner
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from hub import gateway_local, limits, sandbox_fs, sandbox_run, sandbox_workspace
from hub.aiowait import wait_exit, wait_until
from hub.forwarder import UnixForwarder
from hub.package_index import PackageIndexMixin
from hub.plan import DEFAULT_PROFILES, Profile, Resources, WorkspacePlan
from hub.sandbox_run import proc_alive, proc_start_time
from hub.sandbox_spec import HUB_IN_SANDBOX, sandbox_argv, server_command, server_env, unix_url
from hub.spawner_base import DatasetSessionMixin, WorkspaceRefused
from hub.stop_notices import RevocationNoticeMixin

REPO = Path(__file__).resolve().parent.parent


class LocalSandboxSpawner(RevocationNoticeMixin, PackageIndexMixin, DatasetSessionMixin, Spawner):
    """Start each workspace in a bubblewrap sandbox as the user's own uid, with
    the granted datasets' gids, read-only lake and datasets, a writable home and
    a loopback-only network; the proxy and the hub are reached over Unix sockets."""

    bwrap_path = Unicode(shutil.which("bwrap") or "/usr/bin/bwrap", config=True, help="The bubblewrap binary.")
    setpriv_path = Unicode("/usr/bin/setpriv", config=True, help="setpriv (util-linux), run inside the sandbox.")
    workspace_env = Unicode(
        str(REPO / ".venv-workspace"),
        config=True,
        help="The workspace Python environment (built by scripts/setup.d/20-workspace-env.sh); "
        "it must be readable and executable by the workspace uids.",
    )
    workspace_code = Unicode(
        str(REPO / "hub" / "workspace"),
        config=True,
        help="Folder bound read-only as the Python package `insitu_workspace` (the lock-down extension).",
    )
    workspace_etc = Unicode(
        str(REPO / "hub" / "workspace" / "etc" / "jupyter"),
        config=True,
        help="Read-only JUPYTER_CONFIG_DIR of the workspace (enables the lock-down, disables download plugins).",
    )
    runtime_root = Unicode(
        "/tmp/insitu-ws",
        config=True,
        help="Folder of the per-workspace runtime folders (Unix sockets); keep the path short "
        "(a Unix socket path is limited to 107 bytes).",
    )
    extra_ro_binds = List(
        config=True, help="Extra [source, target] pairs bound read-only into every sandbox."
    )
    stop_grace = Float(5.0, config=True, help="Seconds between SIGTERM and SIGKILL on stop.")
    home_mode = Integer(0o700, config=True, help="Mode of a newly created home folder.")
    gateway_uid = Integer(
        199990, config=True,
        help="uid of the workspace gateways (hub/gateway.py): not a researcher's uid, owns no file.",
    )
    gateway_gid = Integer(199990, config=True, help="gid of the workspace gateways (group of each srv/ folder).")
    gateway_python = Unicode(sys.executable, config=True, help="Python interpreter that runs hub.gateway.")
    enforce_limits = Bool(
        True, config=True,
        help="Enforce the profile's memory, CPU and process limits with cgroup v1 (hub/limits.py); "
        "a workspace does not start when they cannot be set.",
    )
    cgroup_parent = Unicode(
        "", config=True,
        help="cgroup (per controller) under which each workspace's cgroup is made; empty: the hub's own.",
    )
    seccomp = Bool(True, config=True, help="Apply the seccomp filter of hub/seccomp.py to every workspace.")
    extra_profiles = List(
        Dict(), config=True,
        help="More profiles besides hub.plan.DEFAULT_PROFILES: dicts with name, display_name, kind and "
        "resources (cpu_limit, cpu_guarantee, mem_limit, mem_guarantee, pids_limit, tmp_limit).",
    )

    @default("offered_profiles")
    def _default_offered_profiles(self):
        # no GPU in the local sandbox; the desktop is the same sandbox with a graphical session
        return ["notebook-cpu", "desktop"]

    @default("cmd")
    def _default_cmd(self):
        return [f"{self.workspace_env}/bin/jupyterhub-singleuser"]

    @default("http_timeout")
    def _default_http_timeout(self):
        return 60

    # runtime state
    pid = Integer(0)
    pid_start = Unicode(None, allow_none=True)
    runtime_dir = Unicode(None, allow_none=True)
    proc: subprocess.Popen | None = None
    gw_pid = Integer(0)
    gw_start = Unicode(None, allow_none=True)
    gw_proc: subprocess.Popen | None = None
    _pass_fds: tuple[int, ...] = ()
    forwarder: UnixForwarder | None = None

    # ------------------------------------------------------------------
    @property
    def socket_path(self) -> str | None:
        """What the proxy connects to: the workspace gateway's socket (hub/gateway_local.py)."""
        return gateway_local.gateway_socket(self.runtime_dir) if self.runtime_dir else None

    def _abs(self, p: str) -> str:
        return os.path.abspath(p)

    # keep the proxy/hub pointed at the Unix socket, also after a hub restart
    # (JupyterHub stores proto/ip/port only, and lower-cases the host part)
    @property
    def server(self):
        s = Spawner.server.fget(self)
        if s is not None and self.socket_path and s.proto == "http+unix":
            url = unix_url(self.socket_path)
            if not s.connect_url.startswith(url + "/"):
                s.connect_url = url
        return s

    @server.setter
    def server(self, server):
        Spawner.server.fset(self, server)

    def get_state(self):
        state = super().get_state()
        if self.pid:
            state.update(pid=self.pid, pid_start=self.pid_start, runtime_dir=self.runtime_dir)
        if self.gw_pid:
            state.update(gw_pid=self.gw_pid, gw_start=self.gw_start)
        state.update({k: v for k, v in self.session_state().items() if v})
        return state

    def load_state(self, state):
        super().load_state(state)
        self.pid = int(state.get("pid", 0) or 0)
        self.pid_start = state.get("pid_start")
        self.gw_pid = int(state.get("gw_pid", 0) or 0)
        self.gw_start = state.get("gw_start")
        self.runtime_dir = state.get("runtime_dir")
        self.load_session_state(state)

    def clear_state(self):
        super().clear_state()
        self.pid = 0
        self.pid_start = None
        self.gw_pid = 0
        self.gw_start = None
        self.runtime_dir = None
        self.session_id = None
        self.plan_json = None

    # ------------------------------------------------------------------
    def plan_settings(self):
        settings = super().plan_settings()
        if not self.extra_profiles:
            return settings
        from dataclasses import replace

        extra = tuple(Profile(p["name"], p.get("display_name", p["name"]), p.get("kind", "notebook"),
                              Resources(**p["resources"]), p.get("environment", {})) for p in self.extra_profiles)
        return replace(settings, profiles=DEFAULT_PROFILES + extra)

    def _seccomp_fd(self) -> int | None:
        """A memfd holding the seccomp program, passed to bubblewrap (``--seccomp FD``)."""
        if not self.seccomp:
            return None
        fd = sandbox_run.seccomp_memfd()
        self._pass_fds = (*self._pass_fds, fd)
        return fd

    def _close_pass_fds(self) -> None:
        sandbox_run.close_fds(self._pass_fds)
        self._pass_fds = ()

    # -- the workspace gateway (hub/gateway.py, hub/gateway_local.py) -----
    def gateway_config(self, plan: WorkspacePlan) -> dict:
        env = self.get_env()
        return {
            "user": self.user.name, "server_name": self.name, "base_url": self.server.base_url,
            "api_url": self.hub.api_url, "api_token": self.api_token, "client_id": self.oauth_client_id,
            "oauth_redirect_uri": env["JUPYTERHUB_OAUTH_CALLBACK_URL"], "hub_host": env.get("JUPYTERHUB_HOST", ""),
            "hub_prefix": self.hub.base_url, "listen": gateway_local.gateway_socket(self.runtime_dir),
            "upstream": gateway_local.server_socket(self.runtime_dir), "owner_uid": plan.uid,
            "run_as": [self.gateway_uid, self.gateway_gid], "report_url": self.dataset_service_url,
            "report_token": self.dataset_service_token, "session_id": self.session_id or "",
            "project": plan.project,
            "cookie_options": dict(self.cookie_options or {}),
        }

    async def _start_gateway(self, plan: WorkspacePlan) -> None:
        gateway_local.prepare_dirs(self.runtime_dir, plan.uid, self.gateway_gid)
        self.gw_proc = gateway_local.start_gateway(self.gateway_config(plan), python=self.gateway_python,
                                                   cwd=str(REPO))
        self.gw_pid = self.gw_proc.pid
        self.gw_start = proc_start_time(self.gw_pid)
        await gateway_local.wait_listening(self.runtime_dir, self.gw_proc)

    def _gateway_alive(self) -> bool:
        if self.gw_proc is not None and self.gw_proc.pid == self.gw_pid:
            return self.gw_proc.poll() is None
        return bool(self.gw_pid) and proc_alive(self.gw_pid, self.gw_start)

    async def _stop_gateway(self) -> None:
        if self.gw_pid:
            await gateway_local.stop_gateway(self.gw_pid, self._gateway_alive)
        if self.gw_proc is not None and await wait_exit(self.gw_proc, 2) is None:
            self.log.error("the gateway of %s did not exit", self.user.name)
        self.gw_proc = None
        self.gw_pid = 0
        self.gw_start = None

    def _cgroup(self) -> limits.WorkspaceCgroup | None:
        if not (self.enforce_limits and self.runtime_dir):
            return None
        return sandbox_run.workspace_cgroup(self.runtime_dir, self.cgroup_parent)

    async def _ensure_forwarder(self, plan_uid: int | None = None) -> None:
        if self.forwarder is not None and self.forwarder.running:
            return
        if not self.runtime_dir:
            return
        uid = plan_uid
        if uid is None and self.plan_json:
            uid = json.loads(self.plan_json)["uid"]
        self.forwarder = UnixForwarder(
            f"{self.runtime_dir}/{sandbox_fs.HUB_DIR}/hub.sock",
            self.hub.url,
            user=self.user.name,
            hub_prefix=self.hub.base_url,
            mode=0o600,
            owner=(uid, -1) if uid is not None else None,
            log=self.log,
        )
        await self.forwarder.start()

    def _argv_and_env(self, plan: WorkspacePlan) -> tuple[list[str], dict[str, str]]:
        argv = sandbox_argv(
            plan,
            server_command(self.cmd, self.get_args()),
            runtime_dir=self.runtime_dir,
            workspace_env=self._abs(self.workspace_env),
            workspace_code=self._abs(self.workspace_code),
            workspace_etc=self._abs(self.workspace_etc),
            bwrap=self.bwrap_path,
            setpriv=self.setpriv_path,
            extra_ro_binds=tuple(tuple(x) for x in self.extra_ro_binds) + sandbox_workspace.core_binds()
            + sandbox_workspace.example_binds() + self.package_index_binds(),
            shm_size=sandbox_workspace.shm_size_for(plan.resources.mem_limit),
            hub_dir=f"{self.runtime_dir}/{sandbox_fs.HUB_DIR}",
            server_dir=f"{self.runtime_dir}/{gateway_local.SERVER_DIR}",
            tmp_size=plan.resources.tmp_limit,
            seccomp_fd=self._seccomp_fd(),
        )
        cg = self._cgroup()
        if cg is not None:  # the command enters the workspace's cgroups before bubblewrap runs
            argv = sandbox_run.enter_cgroup(cg, plan.resources, argv)
        base = self.server.base_url if self.server else "/"
        return argv, server_env(plan, self.get_env(), self._abs(self.workspace_env), base)

    async def start(self):
        try:
            plan = await self.open_dataset_session()
        except WorkspaceRefused as e:
            self.log.warning("workspace for %s refused: %s", self.user.name, e)
            raise
        if plan.kind not in ("notebook", "desktop"):
            await self.close_dataset_session()
            raise WorkspaceRefused(f"profile {plan.profile!r} cannot run in the local sandbox")
        try:
            sandbox_run.prepare_home(self._abs(self.home_root), plan, self.home_mode, log=self.log)
            self.runtime_dir = sandbox_run.prepare_runtime(self._abs(self.runtime_root), plan)
            # the single-user server reaches the hub API through hub.sock
            self.hub_connect_url = unix_url(f"{HUB_IN_SANDBOX}/hub.sock")
            await self._ensure_forwarder(plan.uid)
            await self.start_package_index()  # the curated package index (hub/package_index.py)
            await self._start_gateway(plan)
            argv, env = self._argv_and_env(plan)
            self.log.info("starting sandbox for %s: uid %s, gids %s", self.user.name, plan.uid, plan.supplementary_gids)
            self.log.debug("sandbox command: %s", argv)
            self.proc = sandbox_run.launch(argv, env, self._pass_fds)
            self._close_pass_fds()
        except Exception as e:
            await self._teardown()
            await self.close_dataset_session()
            if isinstance(e, WorkspaceRefused):
                raise
            self.log.error("the sandbox of %s could not start: %s", self.user.name, e)
            raise WorkspaceRefused("The workspace could not be prepared, so it did not start. Please try again; "
                                   "if it happens again, tell the platform's operators.", 503) from e
        self.pid = self.proc.pid
        self.pid_start = proc_start_time(self.pid)
        # wait for the server's socket; a sandbox that exits first fails the spawn now (after the
        # start timeout the hub's own timeout handling takes over)
        proc, runtime_dir = self.proc, self.runtime_dir
        await wait_until(lambda: gateway_local.server_listening(runtime_dir) or proc.poll() is not None,
                         self.start_timeout)
        rc = proc.poll()
        if rc is not None and not gateway_local.server_listening(runtime_dir):
            await self._teardown()
            await self.close_dataset_session()
            self.pid = 0
            raise WorkspaceRefused(f"The workspace stopped while it was starting (status {rc}). Please try "
                                   "again; if it happens again, tell the platform's operators.", 503)
        return unix_url(self.socket_path)

    async def poll(self):
        if self.proc is not None and self.proc.pid == self.pid:
            rc = self.proc.poll()
            if rc is not None:
                return rc
        elif not self.pid or not proc_alive(self.pid, self.pid_start):
            return 0
        if not self._gateway_alive():
            self.log.error("the gateway of %s's workspace is gone; the workspace stops", self.user.name)
            return 1
        # alive: after a hub restart, re-open the hub API forwarder and the package index
        try:
            await self._ensure_forwarder()
        except OSError as e:
            self.log.error("cannot re-open the hub forwarder for %s: %s", self.user.name, e)
        try:
            await self.resume_package_index()
        except OSError as e:
            self.log.error("cannot serve the package index to %s again: %s", self.user.name, e)
        return None

    def _signal_group(self, sig: int) -> bool:
        """Signal the sandbox's process group; False when nothing of it is left."""
        return sandbox_run.signal_group(self.pid, self.proc, sig)

    async def _teardown(self) -> None:
        await self._stop_gateway()
        await self.stop_package_index()
        if self.forwarder is not None:
            await self.forwarder.stop()
            self.forwarder = None
        self._close_pass_fds()
        cg = self._cgroup()
        if cg is not None and not await wait_until(cg.remove_once, 5.0):
            self.log.error("cgroups of %s's workspace could not be removed", self.user.name)
        if self.runtime_dir:
            try:
                sandbox_fs.remove_runtime(self.runtime_dir)  # by descriptors: nothing below is followed
            except OSError as e:
                self.log.error("runtime folder %s not removed: %s", self.runtime_dir, e)

    async def stop(self, now=False):
        if self.pid and (self.proc is not None or proc_alive(self.pid, self.pid_start)):
            # the single-user server (same process group) shuts down on SIGTERM; when it
            # exits, the sandbox's PID namespace ends and takes its kernels with it
            if self._signal_group(signal.SIGTERM):
                gone = await wait_until(lambda: not self._signal_group(0), 0.5 if now else self.stop_grace)
                if not gone:
                    self._signal_group(signal.SIGKILL)
            if self.proc is not None and await wait_exit(self.proc, 5) is None:
                self.log.error("sandbox of %s did not exit", self.user.name)
        self.proc = None
        await self._teardown()
        await self.close_dataset_session()
        self.pid = 0
        self.pid_start = None
        self.runtime_dir = None

