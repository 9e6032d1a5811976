"""What a local sandbox is, as pure functions of the workspace plan (golden tests: tests/hub/test_sandbox_spec.py).

Like kubespawner's ``objects.py`` for a pod: nothing here starts a process, opens a
file or reads the environment; the side-effecting part (folders by descriptor,
cgroups, the seccomp descriptor, processes) is ``hub/sandbox_run.py``, the spawner's
life cycle ``hub/sandbox.py``. The single exception is stated where it is:
``sandbox_argv`` reads the merged-usr symlinks of ``/`` (``host_usr_links``) when it
is not handed them.

The single-user server runs under bubblewrap, started as root without a user
namespace, then ``setpriv`` switches to the plan's uid/gid with exactly the
plan's dataset gids as supplementary groups, no capabilities (inheritable,
ambient, bounding) and ``no_new_privs``. The kernel therefore checks the lake's
ACLs against the real uid and groups. The sandbox sees (``sandbox_argv``):

* ``/usr`` (and the ``/bin``, ``/lib`` … symlinks of merged-usr) read-only, a
  few files of ``/etc`` read-only, a generated ``/etc/passwd``, ``/etc/group``
  and ``/etc/hosts`` (``etc_contents``);
* ``/proc`` of its own PID namespace, a minimal ``/dev``, a private ``/tmp``
  (a tmpfs of ``tmp_limit`` bytes) and ``/dev/shm``;
* the lake read-only at its mount path, each chosen dataset folder read-only at
  ``/mnt/datasets/<id>``, the home folder writable;
* ``/mnt/datasets/by-name/<slug of name>-v<version>``: a symlink to ``../<id>`` per dataset
  (the plan's ``dataset_paths``, ``hub/dataset_names.py``), made by bubblewrap in its own
  root-owned folders (0755): the researcher can neither remove, replace nor add a link;
* the workspace environment, the workspace library (``hub/workspace`` as
  ``insitu_workspace``), the core's rules it checks datasets with (``insitu/``)
  and the example notebooks read-only;
* ``/run/insitu``: its own runtime folder (owned by the user, 0700);
* ``/run/insitu-server``: where the server listens (``jupyter.sock``). Only the
  workspace gateway (``hub/gateway.py``, outside the sandbox under its own uid)
  connects to it; the proxy knows only the gateway's socket
  (``hub/gateway_local.py``);
* ``/run/insitu-hub``: a root-owned folder, read-only, holding ``hub.sock``
  (``hub/forwarder.py``: a filter in the hub process that passes only the hub
  API calls the single-user server needs);
* ``/run/insitu-index``: the socket of the hub's curated package index
  (``hub/package_index.py``), which pip reaches through a loopback relay.

It has its own network namespace with loopback only (``--unshare-net``): no
packet can leave it: the hub, the gateway and the package index are reached over
Unix sockets. It also has its own PID, IPC and UTS namespaces.

Invariants (tested): the command ends with ``setpriv`` to the plan's uid, gid and
exactly its dataset gids (``--clear-groups`` when there are none), every capability
dropped and ``no_new_privs``, then the command; only the home (and the server's and
runtime folders) are bound writable; the environment carries nothing of the hub's
own besides the single-user server's ``JUPYTERHUB_*``/``JPY_*``/``MEM_*``/``CPU_*``.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from hub import dataset_names, gateway_local, sandbox_workspace
from hub.plan import WorkspacePlan

RUN_IN_SANDBOX = "/run/insitu"
HUB_IN_SANDBOX = "/run/insitu-hub"  # root-owned, read-only: hub.sock
WORKSPACE_PY = "/opt/insitu/python"
WORKSPACE_ETC = "/opt/insitu/etc/jupyter"
ETC_FILES = (
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/fonts",
    "/etc/mime.types",
    "/etc/matplotlibrc",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/inputrc",
    "/etc/xdg",  # desktop defaults (openbox, GTK) for the desktop profile
    "/etc/terminfo",
)
HOSTS = "127.0.0.1 localhost workspace\n::1 localhost ip6-localhost\n"
USR_LINKS = ("bin", "sbin", "lib", "lib64", "lib32")
# folders that exist in the sandbox already: no --dir for them or above them
_PREMADE = ("/usr", "/etc", "/tmp", "/proc", "/dev")


def unix_url(path: str) -> str:
    return "http+unix://" + quote(path, safe="")


def passwd_lines(plan: WorkspacePlan, login: str = "jovyan") -> tuple[str, str]:
    """Minimal /etc/passwd and /etc/group for the sandbox."""
    passwd = (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"{login}:x:{plan.uid}:{plan.gid}:{plan.user}:{plan.home.target}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    groups = ["root:x:0:", f"users:x:{plan.gid}:" if plan.gid != 0 else ""]
    for ds, gid in zip(plan.dataset_ids, plan.supplementary_gids):
        groups.append(f"dataset-{ds}:x:{gid}:{login}")
    groups.append("nogroup:x:65534:")
    return passwd, "\n".join(g for g in groups if g) + "\n"


def etc_contents(plan: WorkspacePlan) -> dict[str, str]:
    """The generated files of the sandbox's ``/etc`` (written by root into the runtime folder's ``etc/``)."""
    passwd, group = passwd_lines(plan)
    return {"passwd": passwd, "group": group, "hosts": HOSTS}


def host_usr_links() -> tuple[tuple[str, str], ...]:
    """The merged-usr symlinks of this machine's ``/`` (``/bin -> usr/bin`` …): the one host read."""
    out = []
    for link in USR_LINKS:
        target = os.readlink("/" + link) if os.path.islink("/" + link) else None
        if target:
            out.append((target, "/" + link))
    return tuple(out)


def parent_dirs(targets: list[str]) -> list[str]:
    """Every folder above a bind target that bubblewrap would otherwise make 0700, shallowest first."""
    parents: set[str] = set()
    for t in targets:
        p = os.path.dirname(os.path.normpath(t))
        while p not in ("/", "") and p not in _PREMADE:
            parents.add(p)
            p = os.path.dirname(p)
    return sorted(parents, key=lambda x: (x.count("/"), x))


def sandbox_argv(
    plan: WorkspacePlan,
    command: list[str],
    *,
    runtime_dir: str,
    workspace_env: str,
    workspace_code: str,
    workspace_etc: str,
    bwrap: str = "bwrap",
    setpriv: str = "setpriv",
    etc_files: tuple[str, ...] = ETC_FILES,
    extra_ro_binds: tuple[tuple[str, str], ...] = (),
    hub_dir: str | None = None,
    server_dir: str | None = None,
    tmp_size: int | None = None,
    seccomp_fd: int | None = None,
    shm_size: int | None = None,
    usr_links: tuple[tuple[str, str], ...] | None = None,
) -> list[str]:
    """The full bubblewrap + setpriv command line for ``plan``. Pure, given ``usr_links``
    (``(target, link)`` pairs; ``None``: this machine's, ``host_usr_links()``)."""
    a = [
        bwrap,
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "workspace",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for target, link in host_usr_links() if usr_links is None else usr_links:
        a += ["--symlink", target, link]
    a += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777"]
    a += (["--size", str(int(tmp_size))] if tmp_size else []) + ["--tmpfs", "/tmp"]
    a += sandbox_workspace.shm_args(shm_size or sandbox_workspace.SHM_DEFAULT)  # multiprocessing needs it
    a += ["--perms", "0755", "--dir", "/etc"]
    for f in etc_files:
        a += ["--ro-bind-try", f, f]
    for f in ("passwd", "group", "hosts"):
        a += ["--ro-bind", f"{runtime_dir}/etc/{f}", f"/etc/{f}"]
    # every folder above a bind target is created 0755 (bubblewrap would make it 0700)
    targets = [m.target for m in plan.mounts] + [workspace_env, f"{WORKSPACE_PY}/insitu_workspace", WORKSPACE_ETC]
    targets += [dst for _, dst in extra_ro_binds] + [RUN_IN_SANDBOX, HUB_IN_SANDBOX, gateway_local.SERVER_IN_SANDBOX]
    targets += list(plan.dataset_paths.values())
    for d in parent_dirs(targets):
        a += ["--perms", "0755", "--dir", d]
    for m in plan.mounts:
        a += ["--ro-bind" if m.read_only else "--bind", m.source, m.target]
    for ds, path in sorted(plan.dataset_paths.items(), key=lambda x: x[1]):  # datasets by name
        a += ["--symlink", dataset_names.link_target(ds), path]
    a += ["--ro-bind", workspace_env, workspace_env]
    a += ["--ro-bind", workspace_code, f"{WORKSPACE_PY}/insitu_workspace"]
    a += ["--ro-bind", workspace_etc, WORKSPACE_ETC]
    for src, dst in extra_ro_binds:
        a += ["--ro-bind", src, dst]
    a += ["--bind", runtime_dir + "/run", RUN_IN_SANDBOX]
    if hub_dir:
        a += ["--ro-bind", hub_dir, HUB_IN_SANDBOX]
    if server_dir:  # the notebook server's socket folder (hub/gateway_local.py)
        a += ["--bind", server_dir, gateway_local.SERVER_IN_SANDBOX]
    a += ["--chdir", plan.home.target, "--"]
    groups = ",".join(str(g) for g in plan.supplementary_gids)
    a += [setpriv, f"--reuid={plan.uid}", f"--regid={plan.gid}"]
    a += [f"--groups={groups}"] if groups else ["--clear-groups"]
    a += ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return a + list(command)


def sandbox_env(plan: WorkspacePlan, hub_env: dict[str, str], workspace_env: str) -> dict[str, str]:
    """Environment of the workspace: the hub's variables for the single-user
    server, the plan's variables, and nothing of the hub's own environment."""
    env = {k: v for k, v in hub_env.items() if k.startswith(("JUPYTERHUB_", "JPY_", "MEM_", "CPU_"))}
    env.update(plan.environment)
    env.update(
        {
            "PATH": f"{workspace_env}/bin:/usr/local/bin:/usr/bin:/bin",
            "USER": "jovyan",
            "LOGNAME": "jovyan",
            "SHELL": "/bin/bash",
            "LANG": "C.UTF-8",
            "PYTHONPATH": WORKSPACE_PY,
            "PYTHONNOUSERSITE": "1",
            "JUPYTER_CONFIG_DIR": WORKSPACE_ETC,
            "JUPYTER_CONFIG_PATH": WORKSPACE_ETC,
            "JUPYTERHUB_DISABLE_USER_CONFIG": "1",
            "JUPYTER_RUNTIME_DIR": f"{RUN_IN_SANDBOX}/jupyter",
            "IPYTHONDIR": f"{plan.home.target}/.ipython",
            "MPLCONFIGDIR": f"{plan.home.target}/.config/matplotlib",
            "TMPDIR": "/tmp",
        }
    )
    # the user's own Jupyter, JupyterLab and pip folders in the home; PATH (hub/sandbox_workspace.py)
    env.update(sandbox_workspace.user_env(plan.home.target, workspace_env))
    return env


def server_command(cmd: list[str], args: list[str]) -> list[str]:
    """The single-user server's command: it listens in ``srv/`` (group: the gateway's), reached only
    through the gateway, on the socket only (``get_args()``'s ``--port``/``--ip`` are dropped)."""
    sock = f"{gateway_local.SERVER_IN_SANDBOX}/{gateway_local.SERVER_SOCKET}"
    command = list(cmd) + [f"--sock={sock}", "--ServerApp.sock_mode=0660"] + list(args)
    return [c for c in command if not c.startswith(("--port", "--ip="))]


def server_env(plan: WorkspacePlan, hub_env: dict[str, str], workspace_env: str, base_url: str) -> dict[str, str]:
    """``sandbox_env`` plus what the single-user server of ``plan`` needs: its service URL and the profile."""
    env = sandbox_env(plan, hub_env, workspace_env)
    # jupyter-server refuses --sock with any port but its default; it binds no TCP port
    env["JUPYTERHUB_SERVICE_URL"] = f"http://127.0.0.1:8888{base_url}"
    # the desktop profile: the same server plus the graphical session (hub/workspace/desktop.py)
    env["INSITU_WORKSPACE_KIND"] = plan.kind
    if plan.kind == "desktop":
        env["JUPYTERHUB_DEFAULT_URL"] = "/insitu/desktop"
    return env
